"""The course's bundled data sets, their loaders, checksums and figures.

Everything runs offline: three generated sets (cardiac MR segmentation, CT
slice classification, PPG beat detection) are committed under ``data/`` with
checksums, their reserved test splits live only in the instructor's
``solutions/`` folder, and loaders for the public data sets ACDC and
OrganAMNIST read files the user already has. See ``data/README.md``.

    from dlcourse.data import load_cardiac, show_cardiac
    images, masks = load_cardiac("train")
    show_cardiac(images, masks)
"""

from .cardiac import CARDIAC_CLASS_NAMES, generate_cardiac, load_cardiac
from .ct import CT_CLASS_NAMES, generate_ct, load_ct_slices
from .errors import DataError, MissingDataError
from .paths import data_dir
from .plots import show_cardiac, show_ct, show_recording, show_signal
from .ppg import detect_beats, synthesize_ppg
from .public import ORGANAMNIST_CLASS_NAMES, load_acdc, load_organamnist
from .signals import (
    BEAT_TOLERANCE,
    SIGNAL_FS,
    SOURCES,
    WINDOW,
    Recording,
    load_recordings,
    load_signals,
)

__all__ = [
    "BEAT_TOLERANCE",
    "CARDIAC_CLASS_NAMES",
    "CT_CLASS_NAMES",
    "ORGANAMNIST_CLASS_NAMES",
    "SIGNAL_FS",
    "SOURCES",
    "WINDOW",
    "DataError",
    "MissingDataError",
    "Recording",
    "data_dir",
    "detect_beats",
    "generate_cardiac",
    "generate_ct",
    "load_acdc",
    "load_cardiac",
    "load_ct_slices",
    "load_organamnist",
    "load_recordings",
    "load_signals",
    "show_cardiac",
    "show_ct",
    "show_recording",
    "show_signal",
    "synthesize_ppg",
]
