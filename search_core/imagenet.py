"""The images of the ImageNet transfer (section IV-D-2, Table V), as DARTS trains on ImageNet.

Table V retrains the genotypes searched on CIFAR-10 on ImageNet-1K in DARTS's mobile setting:
its ImageNet network (:class:`~search_core.model_eval.ImageNetNetwork`, 14 cells, C=48) with
its ImageNet recipe (the ``imagenet`` preset of :mod:`search_core.eval_config`). DARTS's
script (quark0/darts ``cnn/train_imagenet.py``) reads every image with torchvision: training
images through RandomResizedCrop(224), a horizontal flip and ColorJitter(brightness=0.4,
contrast=0.4, saturation=0.4, hue=0.2), test images resized to 256 on their shorter side and
centre-cropped to 224. Here, as for every dataset of this project, a split is read once
into memory as uint8 and augmented on the device; with ``image_size`` s (224) and
S = round(s·256/224) (256):

- training images are stored as S×S squares (shorter side resized to S, the centre square
  kept), and every step crops each one as RandomResizedCrop(s) does (area 8-100 %, aspect
  3/4-4/3) and flips it (:func:`search_core.augment.random_resized_crop_flip`). The crops
  are drawn from that centre square, not from the whole width of a wide image; then each
  crop is colour-jittered as DARTS's ColorJitter (:data:`COLOR_JITTER`) by
  :func:`search_core.augment.color_jitter`, before normalisation as in DARTS's transform
  (where it comes before ToTensor and Normalize). It jitters the bilinear crop's floats with
  torchvision's tensor adjustments, where DARTS's jitters the uint8 PIL image with PIL's:
  the same maps, but for PIL's rounding to whole levels of 0-255 after each and of the hue
  shift to 1/256 of the circle;
- test images, and the OoD set's, go through DARTS's test transform: shorter side to S,
  centre crop s×s (the crop taken from the S×S square, which is the same to within a pixel);
- normalisation uses the training split's own per-channel mean and std, as every set here,
  rather than ImageNet's published constants (which they approach on the full set).

**This loading does not scale to the real ImageNet-1K.** Its 1.28 M training images held as
256×256 uint8 are about 250 GB, all on the device, and its 50 k validation images at 224 are
7.5 GB as uint8 and 30 GB as the normalised floats the PGD and OoD measures take whole. It
runs Table V's pipeline on what fits in the device's memory (a subset: fewer classes, fewer
images per class, such as ImageNet-100 or a few hundred images per class of ImageNet-1K).
Training on the whole of ImageNet-1K needs a streaming loader (torchvision's ImageFolder and
these transforms under a DataLoader with workers, as DARTS's script), which this project does
not have: a user who needs the full Table V builds the network with
:func:`~search_core.eval_config.build_network` and trains it with such a loader. The folder
read is ``imagefolder:imagenet`` under ``data_root`` by default: ``train/<class>/*`` and
``test/<class>/*``, the same class folders in both; ImageNet's ``val/`` must first be sorted
into class folders and named (or linked as) ``test/``.
"""

from __future__ import annotations

import torch

from search_core.augment import color_jitter, normalize, random_resized_crop_flip, to_float
from search_core.data import ImageSet, load_image_set
from search_core.eval_config import EvalConfig
from search_core.search import DeviceData

__all__ = ["COLOR_JITTER", "ResizedCropData", "centre_crop", "load_imagenet_sets", "stored_size"]

# DARTS's train_imagenet.py: ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2)
COLOR_JITTER = (0.4, 0.4, 0.4, 0.2)


def stored_size(image_size: int) -> int:
    """The side images are read at: 256 for 224, DARTS's resize before its 224 crop."""
    return round(image_size * 256 / 224)


def _centre_offset(side: int, size: int) -> int:
    """Where torchvision's CenterCrop starts a window of ``size`` in a side of ``side``."""
    return round((side - size) / 2.0)


def centre_crop(images: ImageSet, size: int) -> ImageSet:
    """The centre ``size``x``size`` of every image, placed as torchvision's CenterCrop."""
    top = _centre_offset(images.image_size, size)
    window = images.images[:, :, top : top + size, top : top + size].contiguous()
    return ImageSet(window, images.labels, images.num_classes, images.mean, images.std, images.name)


def load_imagenet_sets(config: EvalConfig) -> tuple[ImageSet, ImageSet, ImageSet]:
    """The training split stored at :func:`stored_size`, the test split and the OoD set's
    test split through DARTS's test transform, at ``config.image_size``."""
    side = stored_size(config.image_size)

    def read(name: str, split: str) -> ImageSet:
        return load_image_set(
            name, split, config.data_root, config.download, side, keep_aspect=True
        )

    train = read(config.dataset, "train")
    test = centre_crop(read(config.dataset, "test"), config.image_size)
    ood = centre_crop(read(config.ood_dataset, "test"), config.image_size)
    return train, test, ood


class ResizedCropData(DeviceData):
    """The stored training squares on the device, cropped as RandomResizedCrop(size) + flip,
    then colour-jittered with ``jitter``'s (brightness, contrast, saturation, hue)."""

    def __init__(
        self,
        images: ImageSet,
        device: torch.device,
        size: int,
        jitter: tuple[float, float, float, float] = COLOR_JITTER,
    ) -> None:
        super().__init__(images, device, augment=False)
        self.size = size
        self.top = _centre_offset(images.image_size, size)
        self.jitter = jitter

    def batch(
        self, index: torch.Tensor, generator: torch.Generator | None, augment: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_float(self.images[index])
        if augment:
            x = random_resized_crop_flip(x, self.size, generator)
            x = color_jitter(x, *self.jitter, generator)
        else:  # the test transform's centre crop
            x = x[:, :, self.top : self.top + self.size, self.top : self.top + self.size]
        return normalize(x, self.mean, self.std), self.labels[index]
