"""One module per backend; each ends with the channel class the registry loads."""
