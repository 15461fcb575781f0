"""The render room: label images, class colours and overlays as pixels,
shared by the node, the bag processor and the CLI (numpy and OpenCV only)."""
