"""Visual augmentation of demo videos: HDF5 -> MP4 (+ control videos), local or Cosmos Transfer engine, MP4 -> HDF5.

Import what you need from the modules (``robodata.augment.export``, ``.local``, ``.cosmos``, ``.merge``,
``.checks``); this package's ``__init__`` stays light so that ``robodata.config`` can import the config model
without pulling torch or PyAV in.
"""

from robodata.augment.config import AugmentedVideosConfig, CosmosConfig, LocalEngineConfig
from robodata.augment.errors import AugmentError

__all__ = ["AugmentError", "AugmentedVideosConfig", "CosmosConfig", "LocalEngineConfig"]
