"""Networks of xraymunit: MUNIT generator/discriminator and the VGG16 perceptual trunk.

Modules take explicit constructor arguments (no config objects) and import only torch.
"""

from xraymunit.models.discriminator import MultiScaleDiscriminator, PatchDiscriminator
from xraymunit.models.generator import AdaINGenerator, ContentEncoder, Decoder, StyleEncoder
from xraymunit.models.munit import MunitDiscriminators, MunitGenerators, Translation, init_weights
from xraymunit.models.vgg import VGG16Features, build_vgg16

__all__ = [
    "AdaINGenerator", "ContentEncoder", "Decoder", "StyleEncoder",
    "MultiScaleDiscriminator", "PatchDiscriminator",
    "MunitDiscriminators", "MunitGenerators", "Translation", "init_weights",
    "VGG16Features", "build_vgg16",
]
