"""The rest of easyeditor's ALG_DICT: methods that run as they are, and methods that cannot edit a SafeEdit request.

Each is one line here because the package knows nothing more about it than its hparams class (and,
for the refused ones, why): a method that needs more gets its own file, as ft.py or wise.py.
"""

from __future__ import annotations

from .base import MethodAdapter, register_adapter

# alg_name -> its hparams class in easyeditor; edits run as they are, every parameter copied before each.
PLAIN = {
    "KN": "KNHyperParams", "MELO": "MELOHyperParams", "ULTRAEDIT": "UltraEditHyperParams",
    "SimIE": "SimIEHyperParams", "DEFER": "DeferHyperParams",
}
# Methods that wrap or add modules and leave the base weights alone.
NO_WRITES = ("MELO", "DEFER")

SUBJECT_REASON = ("it edits the key vector of `request['subject']`, and a SafeEdit request has no subject "
                  "(the edit is an unsafe behaviour, not a subject-relation-object fact)")
# alg_name -> (its hparams class, why it cannot edit a SafeEdit request)
REFUSED = {
    "ROME": ("ROMEHyperParams", SUBJECT_REASON), "MEMIT": ("MEMITHyperParams", SUBJECT_REASON),
    "MEMIT-FE": ("MEMITFEHyperParams", SUBJECT_REASON), "R-ROME": ("R_ROMEHyperParams", SUBJECT_REASON),
    "EMMET": ("EMMETHyperParams", SUBJECT_REASON), "EAMET": ("EAMETHyperParams", SUBJECT_REASON),
    "AlphaEdit": ("AlphaEditHyperParams", SUBJECT_REASON), "PMET": ("PMETHyperParams", SUBJECT_REASON),
    "SPHERE": ("SPHEREHyperParams", SUBJECT_REASON), "CORE": ("COREHyperParams", SUBJECT_REASON),
    "FT-Api": ("FTApiHyperParams", "it fine-tunes a remote OpenAI model, not the loaded one"),
    "DeepEdit-Api": ("DeepEditApiHyperParams", "it edits through a remote API, not the loaded model"),
    "IKE": ("IKEHyperParams", "it needs `train_ds` (a training set of in-context demonstrations), which the "
                              "SafeEdit evaluation does not provide"),
    "QLoRA": ("QLoRAHyperParams", "it loads the model 4-bit quantised through bitsandbytes on a CUDA device itself"),
}


def _adapter(alg: str, class_name: str, **fields) -> type:
    return register_adapter(type(f"{alg.replace('-', '')}Adapter", (MethodAdapter,),
                                 {"alg_name": alg, "hparams_class_name": class_name, **fields}))


for _alg, _cls in PLAIN.items():
    _adapter(_alg, _cls, writes_no_parameters=_alg in NO_WRITES)
for _alg, (_cls, _why) in REFUSED.items():
    _adapter(_alg, _cls, refused=_why)
