"""easyedit-detox: DINM and the SafeEdit evaluation as a plugin for EasyEdit (placeholder during bootstrap)."""
