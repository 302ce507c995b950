"""Studies that measure the paper's claims: many independent searches or trainings, one merged report.

- :class:`~bnnzoo.study.noise.NoiseStudy`: eps_A x eps_W x seeds, sharpness, stability, op preferences
  and proxy accuracy (``bnnzoo study noise``);
- :class:`~bnnzoo.study.shortcut.ShortcutStudy`: the reduction shortcut ablation of Table 1
  (``bnnzoo study shortcut``);
- :func:`~bnnzoo.study.runner.run_study` runs the pending points (``jobs`` processes), and
  :func:`~bnnzoo.study.runner.write_report` merges the points that are done (``bnnzoo study report``).

The names below load on first use (no torch at import).
"""

from bnnzoo._lazy import lazy_attributes

_PUBLIC = {
    "NoiseStudy": "bnnzoo.study.noise",
    "ShortcutStudy": "bnnzoo.study.shortcut",
    "run_study": "bnnzoo.study.runner",
    "write_report": "bnnzoo.study.runner",
    "StudyError": "bnnzoo.study.layout",
}

__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_attributes(__name__, _PUBLIC)
