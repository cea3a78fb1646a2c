"""Speech–video data: the DATA folder format and synthetic pairs."""
