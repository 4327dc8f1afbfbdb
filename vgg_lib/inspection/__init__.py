"""Looking inside a trained VGG (chapter 7): feature maps, filters, activation maximisation,
effective receptive fields and their plots."""
