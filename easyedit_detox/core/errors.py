"""Errors a user can cause. The CLI prints any of them in one line and exits with status 2."""


class UserError(ValueError):
    """Bad input from the user (file, key, path, shape): the message names it and the fix."""


class HyperParamsError(UserError):
    """An hparams file or object that cannot be used."""


class RequestError(UserError):
    """An edit request that DINM cannot run on."""


class DataError(UserError):
    """A SafeEdit data file that cannot be read."""
