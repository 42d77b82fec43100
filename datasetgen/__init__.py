"""datasetgen stage."""
