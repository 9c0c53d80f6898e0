"""reduce_window, select_and_scatter, convolution."""
