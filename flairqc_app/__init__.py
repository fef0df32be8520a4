"""flairqc: automatic quality control of brain 3D FLAIR MRI, a BIDS-App."""

__version__ = "0.1.0"
