"""The containerd-style layer and the runC-style runtime of pyreconcile."""
