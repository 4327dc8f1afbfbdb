"""The paper's Table 1 as data, the one config parser, the model builder (with its ``ModelSpec``),
torchvision's weights and the paper's layer names. Imports no other part of vgg_lib."""
