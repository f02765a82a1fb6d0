"""Exports of trained models that load outside Atelier (issue 25, point 4): the network
rebuilt from Keras's own layers, and a bundle of what generating from it needs."""
