def lstm_forward(x, kernel, recurrent_kernel, bias, return_sequences=False):
    """An LSTM layer over x (batch, time, features) from zero states; returns h (last or all steps)."""
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    h = np.zeros((batch, units), dtype=x.dtype)
    hs = []
    for t in range(steps):
        # Mistake: the cell state starts from zero at every step instead of being carried.
        h, c = lstm_cell_forward(x[:, t], h, np.zeros((batch, units), dtype=x.dtype), kernel, recurrent_kernel, bias)
        hs.append(h)
    return np.stack(hs, axis=1) if return_sequences else h
