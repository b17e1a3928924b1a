"""What oneDNN's fused LSTM (``aten::mkldnn_rnn_layer``, float32, the CPU) keeps for backward.

PyTorch (aten/src/ATen/native/mkldnn/RNN.cpp) calls the kernel once per layer and direction, each
call a one-layer, one-direction oneDNN RNN primitive (``n_layer = n_dir = 1``), and in training
allocates its workspace as a uint8 tensor of ``pd.workspace_desc().get_size()`` bytes.  oneDNN
v3.12 (the version torch 2.13 ships, commit 80afa71) sizes it in src/cpu/rnn/rnn_utils.hpp
(``set_conf``: leading dimensions; ``set_workspace_sizes``: sizes) and src/cpu/rnn/rnn_utils.cpp
(``set_offsets``: each part starts on a 4096-byte page).  With T steps, batch B, layer input
width W (``input_size`` for layer 0, D*H above it), hidden size H, s = 4 bytes (float32: the
states, gates and gemm accumulators are all f32), S = 2*(T+1)*B state rows ((n_layer+1) *
n_dir * (n_iter+1) * mb) and

    ld(n) = ceil(n / 16) * 16, plus 16 more when that is a multiple of 256
            (``get_good_ld``: rows padded to 64 bytes, and never a multiple of 1 KiB, against 4K aliasing)
    page(n) = ceil(n / 4096) * 4096

the workspace is the sum of seven page-aligned parts:

    ws_gates             page(T*B*ld(4H)*s)       the gates of every step
    ws_ht                page(T*B*ld(H)*s)        h_t of every step
    ws_states_layer      page(S*ld(max(W, H))*s)  states (ws_states_iter shares it)
    ws_states_iter_c     page(S*H*s)              c_t
    ws_diff_states_layer page(S*ld(max(W, H))*s)  gradient buffers, allocated in the forward
    ws_diff_states_iter  page(S*ld(max(W, H))*s)
    ws_diff_states_iter_c page(S*H*s)

(``ws_grid_comp`` is 0 for an LSTM.)  Nothing here depends on the CPU's ISA: the padding is to
64 bytes whatever the vector width, and both of oneDNN's CPU implementations (brgemm and the
reference gemm one) call the same ``set_workspace_sizes``.  It does depend on the oneDNN version
(the tree of March 2025 also registered ``ws_states_iter``, twice: two pages more at small sizes),
so the tests measure it against ``saved_tensors_hooks`` on the installed torch.
"""
from __future__ import annotations

import torch

PAGE = 4096  # set_offsets: page_size
ROW_ALIGN = 64  # get_good_ld: leading dimensions padded to 64 bytes


def good_ld(n: int, itemsize: int) -> int:
    """oneDNN's ``get_good_ld``: n rounded up to 64 bytes, one block more if a multiple of 256."""
    per = ROW_ALIGN // itemsize
    ld = -(-n // per) * per
    return ld + per if ld % 256 == 0 else ld


def page(nbytes: int) -> int:
    """nbytes rounded up to a 4096-byte page."""
    return -(-nbytes // PAGE) * PAGE


def lstm_workspace_bytes(steps: int, batch: int, width: int, hidden: int,
                         dtype: torch.dtype = torch.float32) -> int:
    """Bytes of the uint8 workspace one ``mkldnn_rnn_layer`` call (one layer, one direction) keeps
    in training; ``width`` is that layer's input width.  See the module docstring for the math."""
    if dtype != torch.float32:  # bf16/f16 use other types for states and gates: not derived here
        raise NotImplementedError(f"oneDNN LSTM workspace for {dtype}")
    s, t, b, h = dtype.itemsize, steps, batch, hidden
    rows = 2 * (t + 1) * b  # (n_layer + 1) * n_dir * (n_iter + 1) * mb
    states = rows * good_ld(max(width, h), s) * s
    parts = [t * b * good_ld(4 * h, s) * s,  # ws_gates
             t * b * good_ld(h, s) * s,  # ws_ht
             states,  # ws_states_layer (= ws_states_iter)
             rows * h * s,  # ws_states_iter_c
             states, states,  # ws_diff_states_layer, ws_diff_states_iter
             rows * h * s]  # ws_diff_states_iter_c
    return sum(page(p) for p in parts)
