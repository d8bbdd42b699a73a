"""ImageNet's channel mean and std (the normalization every shipped model expects) and the
person-crop input size re-ID models are fed by default.

Kept apart from :mod:`transforms` (torch, torchvision) so that reading a feature file's sidecar
does not import torch.
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INPUT_SIZE = (256, 128)  # height x width
