"""Transfer learning: a new classifier on a pretrained ImageNet backbone, from a folder of labelled photos.

    from neuralens import classify
    model = classify.train("photos/", "pets.pt", head="mlp")   # one sub-folder per class
    model.predict("new.jpg").label

The features (globally averaged activations of one backbone layer) are computed once per photo and cached, so
trying other head settings takes seconds. See docs/classify.md.
"""

from .evaluation import Evaluation
from .model import Classifier, Prediction
from .options import ClassifyOptions
from .training import TrainReport, train

load = Classifier.load

__all__ = ["Classifier", "ClassifyOptions", "Evaluation", "Prediction", "TrainReport", "load", "train"]
