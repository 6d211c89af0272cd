"""The container path: the kit's run in its pinned image, from any folder.

driver      the docker SDK behind one small context manager (the only module importing it)
image       the image's inputs (Dockerfile and lock, package data), its derived tag, the build
wheelhouse  the wheels the offline build installs: the lock's pins and the kit's own wheel
session     `stress-kit run --engine docker|auto`: the run's parsed options become mounts
project     the project under test (pyproject, hashed lock, extras) and `stress-kit lock`
leftovers   who owns the results folder, and which session a container belongs to
"""
