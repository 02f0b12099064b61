"""Public types of pyreconcile: manifests, references, units. No I/O."""
