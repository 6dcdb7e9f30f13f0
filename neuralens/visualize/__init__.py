"""Seeing inside the network and tuning it: receptive fields, the image patches and synthetic images that
drive a unit (Zeiler & Fergus 2014), layer-by-layer reconstructions (Gatys et al. 2015, Figure 1), and
tuning sweeps of style-transfer settings, each assembled into a labelled contact sheet.

    from neuralens import visualize
    visualize.receptive_field("relu3_1").size          # 24
    rows = visualize.top_patches("photos/", "relu3_1", count=8)
    visualize.units_sheet(rows).save("units.png")
    visualize.maximize_unit("relu4_1", 17, size=128).image.save("unit17.png")
    visualize.reconstruction_sheet("photo.jpg", size=256).sheet.save("fig1.png")
    result = visualize.sweep("photo.jpg", "starry.jpg", {"style-weight": [1e3, 1e4]}, size=256)
    visualize.save_sweep(result, "sheet.png")
"""

from .maximize import MaximizeResult, maximize_unit, unit_activation
from .receptive import ReceptiveField, check_unit, layer_units, receptive_field, receptive_fields
from .reconstructions import (
    CONTENT_LAYERS,
    STYLE_LAYERS,
    Reconstruction,
    ReconstructionSheet,
    growing_sets,
    reconstruction_sheet,
)
from .sheets import SheetLayout, contact_sheet, sheet_layout
from .sweeps import SweepResult, SweepRun, normalise_vary, parse_vary, save_sweep, sweep
from .units import Patch, UnitPatches, find_images, top_patches, units_sheet

__all__ = [
    "CONTENT_LAYERS",
    "MaximizeResult",
    "Patch",
    "ReceptiveField",
    "Reconstruction",
    "ReconstructionSheet",
    "STYLE_LAYERS",
    "SheetLayout",
    "SweepResult",
    "SweepRun",
    "UnitPatches",
    "check_unit",
    "contact_sheet",
    "find_images",
    "growing_sets",
    "layer_units",
    "maximize_unit",
    "normalise_vary",
    "parse_vary",
    "receptive_field",
    "receptive_fields",
    "reconstruction_sheet",
    "save_sweep",
    "sheet_layout",
    "sweep",
    "top_patches",
    "unit_activation",
    "units_sheet",
]
