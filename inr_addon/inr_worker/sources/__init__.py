"""Sources to samples: a mesh's exact signed distance on its band, points and their normals, masks to
signed distances."""
