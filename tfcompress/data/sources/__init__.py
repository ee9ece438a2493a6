"""Readers of on-disk dataset layouts, each returning a ``convert.Source``.

- ``fashion_mnist.source``       idx ``.gz`` files (classification)
- ``mosaic.source``              Fashion-MNIST mosaics (segmentation or detection)
- ``image_folder.source``        ``root/[split/]class/*.png|jpg`` (classification)
- ``cityscapes.source``          ``leftImg8bit/`` + ``gtFine/`` labelIds (segmentation)
- ``segmentation_pairs.source``  an image folder + a label folder (segmentation)
- ``voc.source``                 VOCdevkit ``VOC20xx`` (detection)
- ``tfds_source.source``         a TensorFlow Datasets dataset already on disk
"""
