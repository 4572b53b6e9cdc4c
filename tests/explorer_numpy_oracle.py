"""An oracle for the explorer's numbers, independent of the engine: each design's forward pass
written here in plain numpy (the book's equations), over complex arrays, with a hook that adds a
perturbation to any state v(k) right after it is computed.  Derivatives come from the complex
step (Squire and Trapp 1998): for an analytic forward f, Im f(x + i e d) / e is the directional
derivative to machine precision (no cancellation, unlike finite differences), so the gradients,
connectivity and Jacobians below are exact to ~1e-15 relative, not 1e-7.

A perturbation of v(k) along unit j gives, in one forward pass, ∂L(t)/∂v(k)_j for every loss
term L(t) (a column of the connectivity; their sum over t is ∂L/∂v(k)_j).  A perturbation of
v(k) only as step k + 1 reads it (:meth:`Tape.read`) gives a column of the one-step Jacobian
∂v(k+1)/∂v(k), every other input of the step (the other state parts too) held at its value.

Designs whose forward differs from a step function of the engine's shape (teacher-forced
inputs, fed-back outputs, masks, chains backward in time) are written out per design; a
test's own cells are written in the test."""

import numpy as np

EPS = 1e-30


def softmax(o):
    e = np.exp(o - o.real.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def cross_entropy(o, y):
    """-log softmax(o)[y] per row: o (B, C), y (B,) ids."""
    m = o.real.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(o - m).sum(axis=-1)) + m[:, 0]
    return lse - o[np.arange(len(y)), y]


class Tape:
    """What one forward pass records: states {(part, k): (B, H)}, loss terms {t: scalar}, the
    tanh/sigmoid units of each step {(chain, t): [(kind, array)]}, other variables."""

    def __init__(self, pert):
        self.pert = pert
        self.states, self.losses, self.units, self.values = {}, {}, {}, {}
        self.touched = False        # whether a perturbation has been added yet

    def state(self, part, k, v):
        self.touched |= (part, k) in self.pert
        v = v + self.pert.get((part, k), 0)
        self.states[(part, k)] = v
        return v

    def read(self, part, k, v):
        """v(k) as the next step reads it: a perturbation at ("read", part, k) reaches that step
        alone (the one-step Jacobian: every other input of the step, the other state parts
        included, held at its value)."""
        self.touched |= ("read", part, k) in self.pert
        return v + self.pert.get(("read", part, k), 0)

    def unit(self, chain, t, kind, v):
        self.units.setdefault((chain, t), []).append((kind, v))
        return v

    def loss(self, t, v):
        """A loss term computed before the perturbation was added cannot depend on it: its
        derivative is exactly 0 (the complex step would give NaN for a term that is NaN or
        infinite: Im(NaN) is NaN)."""
        self.losses[t] = v if self.touched else v.real + 0j

    def value(self, name, t, v):
        self.values[(name, t)] = v
        return v


def _rows(x, B):
    x = np.asarray(x)
    return x.reshape(x.shape[0], B) if x.dtype.kind in "iu" else x.reshape(x.shape[0], B, -1)


def _drive(U, x):
    """U x of a step: ids (B,) -> (B, H) columns, floats (B, n) -> (B, H)."""
    return U[:, x].T if np.asarray(x).dtype.kind in "iu" else x @ U.T


# ------------------------------------------------------------------ the designs

def elman(P, xs, ys, B=1, h0=None, mask=None, last_only=False, part="h"):
    """Figure 10.3 (and 10.5 with ``last_only``): h(t) = m tanh(b + W h(t-1) + U x(t)) +
    (1 - m) h(t-1); L(t) = (1/B) sum_b m CE(c + V h(t), y(t))."""
    xs, ys = _rows(xs, B), np.asarray(ys).reshape(-1, B)
    T = len(xs)
    mask = np.ones((T, B)) if mask is None else np.asarray(mask, dtype=float)

    def forward(tape):
        h = tape.state(part, 0, np.zeros((B, len(P["b"])), complex)
                       + (0 if h0 is None else h0))
        for t in range(1, T + 1):
            h = tape.read(part, t - 1, h)
            new = tape.unit("", t, "tanh", np.tanh(P["b"] + h @ P["W"].T + _drive(P["U"], xs[t - 1])))
            m = mask[t - 1][:, None]
            h = tape.state(part, t, m * new + (1 - m) * h)
            o = tape.value("o", t, P["c"] + h @ P["V"].T)
            if last_only and t == T:
                tape.loss(t, cross_entropy(o, ys[-1]).mean())
            elif not last_only and mask[t - 1].any():
                tape.loss(t, (mask[t - 1] * cross_entropy(o, ys[t - 1])).sum() / B)
    return forward


def gru(P, xs, ys, B=1, h0=None):
    """u = σ(bu + Uu x + Wu h), r = σ(br + Ur x + Wr h), h = u h + (1 - u) tanh(b + U x + W (r h))."""
    xs, ys = _rows(xs, B), np.asarray(ys).reshape(-1, B)

    def forward(tape):
        h = tape.state("h", 0, np.zeros((B, len(P["b"])), complex) + (0 if h0 is None else h0))
        for t in range(1, len(xs) + 1):
            x, h = xs[t - 1], tape.read("h", t - 1, h)
            u = tape.unit("", t, "sigmoid", sigmoid(P["bu"] + _drive(P["Uu"], x) + h @ P["Wu"].T))
            r = tape.unit("", t, "sigmoid", sigmoid(P["br"] + _drive(P["Ur"], x) + h @ P["Wr"].T))
            z = tape.unit("", t, "tanh", np.tanh(P["b"] + _drive(P["U"], x) + (r * h) @ P["W"].T))
            h = tape.state("h", t, u * h + (1 - u) * z)
            tape.loss(t, cross_entropy(P["c"] + h @ P["V"].T, ys[t - 1]).mean())
    return forward


def lstm(P, xs, ys, B=1, h0=None, s0=None, mask=None):
    """Eqs. 10.40-10.44: f, g, q gates, s = f s + g tanh(b + U x + W h), h = tanh(s) q; padded
    steps carry both parts."""
    xs, ys = _rows(xs, B), np.asarray(ys).reshape(-1, B)
    T = len(xs)
    mask = np.ones((T, B)) if mask is None else np.asarray(mask, dtype=float)

    def forward(tape):
        H = len(P["b"])
        s = tape.state("s", 0, np.zeros((B, H), complex) + (0 if s0 is None else s0))
        h = tape.state("h", 0, np.zeros((B, H), complex) + (0 if h0 is None else h0))
        for t in range(1, T + 1):
            x, m = xs[t - 1], mask[t - 1][:, None]
            s, h = tape.read("s", t - 1, s), tape.read("h", t - 1, h)
            f = tape.unit("", t, "sigmoid", sigmoid(P["bf"] + _drive(P["Uf"], x) + h @ P["Wf"].T))
            g = tape.unit("", t, "sigmoid", sigmoid(P["bg"] + _drive(P["Ug"], x) + h @ P["Wg"].T))
            q = tape.unit("", t, "sigmoid", sigmoid(P["bo"] + _drive(P["Uo"], x) + h @ P["Wo"].T))
            z = tape.unit("", t, "tanh", np.tanh(P["b"] + _drive(P["U"], x) + h @ P["W"].T))
            s_new = f * s + g * z
            if m.all():             # s(t) itself is what h(t) reads
                s_new = tape.state("s", t, s_new)
            h_new = tape.unit("", t, "tanh", np.tanh(s_new)) * q
            if not m.all():         # a padded row carries s(t-1): s(t) a blend h(t) does not read
                s_new = tape.state("s", t, m * s_new + (1 - m) * s)
            s = s_new
            h = tape.state("h", t, m * h_new + (1 - m) * h)
            if mask[t - 1].any():
                tape.loss(t, (mask[t - 1] * cross_entropy(P["c"] + h @ P["V"].T, ys[t - 1])).sum() / B)
    return forward


def bidirectional(P, xs, ys, B=1, h0=None, g0=None):
    """Figure 10.11: h forward from h(0), g backward from g(T+1) (perturbations of g(T+1) at
    key ("g", T + 1)), o(t) = c + V [h(t); g(t)]."""
    xs, ys = _rows(xs, B), np.asarray(ys).reshape(-1, B)
    T = len(xs)

    def forward(tape):
        H = len(P["b"])
        h = tape.state("h", 0, np.zeros((B, H), complex) + (0 if h0 is None else h0))
        hs = {}
        for t in range(1, T + 1):
            h = tape.state("h", t, tape.unit("", t, "tanh", np.tanh(
                P["b"] + tape.read("h", t - 1, h) @ P["W"].T + _drive(P["U"], xs[t - 1]))))
            hs[t] = h
        g = tape.state("g", T + 1, np.zeros((B, H), complex) + (0 if g0 is None else g0))
        gs = {}
        for t in range(T, 0, -1):
            g = tape.state("g", t, tape.unit("", t, "tanh", np.tanh(
                P["bg"] + tape.read("g", t + 1, g) @ P["Wg"].T + _drive(P["Ug"], xs[t - 1]))))
            gs[t] = g
        for t in range(1, T + 1):
            o = P["c"] + np.concatenate([hs[t], gs[t]], axis=-1) @ P["V"].T
            tape.loss(t, cross_entropy(o, ys[t - 1]).mean())
    return forward


def encoder_decoder(P, xs, ys, start, B=1, attention=None, mask=None):
    """Figure 10.12: encoder h(t), C = h(n_x), s(0) = C, s(t) = tanh(bd + Wd s(t-1) +
    Ud y(t-1) + R C) (with attention R ctx(t), ctx(t) = sum_k α(t, k) h(k) and
    α(t) = softmax_k of s(t-1) . h(k) or va . tanh(Wa s(t-1) + Ua h(k))), y(0) = start.
    The encoder's units are chain "encoder", the decoder's "decoder"."""
    xs, ys = _rows(xs, B), np.asarray(ys).reshape(-1, B)

    def forward(tape):
        H = len(P["b"])
        h = tape.state("h", 0, np.zeros((B, H), complex))
        hs = []
        for t in range(1, len(xs) + 1):
            h = tape.read("h", t - 1, h)
            new = tape.unit("encoder", t, "tanh", np.tanh(
                P["b"] + h @ P["W"].T + _drive(P["U"], xs[t - 1])))
            m = 1 if mask is None else np.asarray(mask[t - 1], float)[:, None]
            h = tape.state("h", t, m * new + (1 - m) * h)       # a padded row carries h
            hs.append(h)
        C = h
        memory = np.stack(hs, axis=1)                       # (B, n_x, H)
        s = tape.state("s", 0, C)
        prev = np.full(B, start)
        for t in range(1, len(ys) + 1):
            s = tape.read("s", t - 1, s)
            a = P["bd"] + s @ P["Wd"].T + _drive(P["Ud"], prev)
            if attention is None:
                a = a + C @ P["R"].T
            else:
                if attention == "dot":
                    e = np.einsum("bkh,bh->bk", memory, s)
                else:
                    hidden = tape.unit("decoder", t, "tanh", np.tanh(
                        memory @ P["Ua"].T + (s @ P["Wa"].T)[:, None, :]))
                    e = hidden @ P["va"]
                if mask is not None:        # padded source positions: α = 0
                    e = np.where(np.asarray(mask, bool).T, e, -np.inf)
                alpha = tape.value("α", t, softmax(e))
                ctx = tape.value("ctx", t, np.einsum("bk,bkh->bh", alpha, memory))
                a = a + ctx @ P["R"].T
            s = tape.state("s", t, tape.unit("decoder", t, "tanh", np.tanh(a)))
            tape.loss(t, cross_entropy(P["c"] + s @ P["V"].T, ys[t - 1]).mean())
            prev = ys[t - 1]
    return forward


def conditional(P, xs, ys, B=1, h0=None):
    """Figure 10.10: h(t) = tanh(b + W h(t-1) + U x(t) + R onehot(y(t-1))), y(0) = 0."""
    xs, ys = _rows(xs, B), np.asarray(ys).reshape(-1, B)

    def forward(tape):
        h = tape.state("h", 0, np.zeros((B, len(P["b"])), complex) + (0 if h0 is None else h0))
        for t in range(1, len(xs) + 1):
            a = P["b"] + tape.read("h", t - 1, h) @ P["W"].T + _drive(P["U"], xs[t - 1])
            if t > 1:
                a = a + _drive(P["R"], ys[t - 2])
            h = tape.state("h", t, tape.unit("", t, "tanh", np.tanh(a)))
            tape.loss(t, cross_entropy(P["c"] + h @ P["V"].T, ys[t - 1]).mean())
    return forward


def vector_to_sequence(P, x, ys, B=1, h0=None):
    """Figure 10.9: h(t) = tanh(b + W h(t-1) + R x + U onehot(y(t-1))), y(0) = 0."""
    ys = np.asarray(ys).reshape(-1, B)
    x = np.asarray(x, dtype=float).reshape(B, -1)

    def forward(tape):
        h = tape.state("h", 0, np.zeros((B, len(P["b"])), complex) + (0 if h0 is None else h0))
        for t in range(1, len(ys) + 1):
            a = P["b"] + tape.read("h", t - 1, h) @ P["W"].T + x @ P["R"].T
            if t > 1:
                a = a + _drive(P["U"], ys[t - 2])
            h = tape.state("h", t, tape.unit("", t, "tanh", np.tanh(a)))
            tape.loss(t, cross_entropy(P["c"] + h @ P["V"].T, ys[t - 1]).mean())
    return forward


def jordan(P, xs, ys, B=1, free=False):
    """Figure 10.4/10.6: h(t) = tanh(b + W f(t-1) + U x(t)), f(t-1) = onehot(y(t-1)) (or
    softmax(o(t-1)) running free), f(0) = 0.  Its variable h(t) is perturbed at ("h", t)."""
    xs, ys = _rows(xs, B), np.asarray(ys).reshape(-1, B)

    def forward(tape):
        C = len(P["c"])
        f = np.zeros((B, C), complex)
        for t in range(1, len(xs) + 1):
            h = tape.state("h", t, tape.unit("", t, "tanh", np.tanh(
                P["b"] + f @ P["W"].T + _drive(P["U"], xs[t - 1]))))
            o = P["c"] + h @ P["V"].T
            tape.loss(t, cross_entropy(o, ys[t - 1]).mean())
            f = softmax(o) if free else np.eye(C)[ys[t - 1]]
    return forward


def leaky(P, xs, ys, skip=None, alpha=None, B=1):
    """Section 10.9: v(t) = tanh(b + W h(t-1) + U x(t) + Wd h(t-d)), h(t) = α h(t-1) +
    (1 - α) v(t), h(t-d) = h(0) while t - d < 1; α = σ(alpha_logit) when ``alpha`` is None."""
    xs, ys = _rows(xs, B), np.asarray(ys).reshape(-1, B)
    a = sigmoid(P["alpha_logit"]) if alpha is None else alpha

    def forward(tape):
        hs = [tape.state("h", 0, np.zeros((B, len(P["b"])), complex))]
        for t in range(1, len(xs) + 1):
            h = tape.read("h", t - 1, hs[-1])
            pre = P["b"] + h @ P["W"].T + _drive(P["U"], xs[t - 1])
            if skip:        # a delay of 1 reads h(t-1) itself (its Jacobian has Wd too)
                pre = pre + (h if skip == 1 else hs[max(t - skip, 0)]) @ P["Wd"].T
            v = tape.unit("", t, "tanh", np.tanh(pre))
            hs.append(tape.state("h", t, a * h + (1 - a) * v))
            tape.loss(t, cross_entropy(P["c"] + hs[-1] @ P["V"].T, ys[t - 1]).mean())
    return forward


def deep_mlp(P, xs, ys, skip=False, B=1):
    """Figure 10.13 (b), with ``skip`` (c): e(t) = tanh(be + Ue x(t)), z(t) = tanh(bz + Wz
    h(t-1)), h(t) = tanh(b + U e(t) + W z(t) [+ Ws h(t-1)]), g(t) = tanh(bg + Vg h(t)),
    o(t) = c + V g(t)."""
    xs, ys = _rows(xs, B), np.asarray(ys).reshape(-1, B)

    def forward(tape):
        h = tape.state("h", 0, np.zeros((B, len(P["b"])), complex))
        for t in range(1, len(xs) + 1):
            h = tape.read("h", t - 1, h)
            e = tape.unit("", t, "tanh", np.tanh(P["be"] + _drive(P["Ue"], xs[t - 1])))
            z = tape.unit("", t, "tanh", np.tanh(P["bz"] + h @ P["Wz"].T))
            a = P["b"] + e @ P["U"].T + z @ P["W"].T + (h @ P["Ws"].T if skip else 0)
            h = tape.state("h", t, tape.unit("", t, "tanh", np.tanh(a)))
            g = tape.unit("", t, "tanh", np.tanh(P["bg"] + h @ P["Vg"].T))
            tape.loss(t, cross_entropy(P["c"] + g @ P["V"].T, ys[t - 1]).mean())
    return forward


def echo_state(P, xs, ys, B=1):
    """Section 10.8: h(t) = tanh(b + W h(t-1) + U x(t)) (U, W, b fixed), o(t) = c + V h(t),
    L(t) = (1/B) sum_b ||o(t)_b - y(t)_b||²; xs (T, n) and ys (T, K) floats."""
    xs = np.asarray(xs, dtype=float).reshape(len(xs), B, -1)
    ys = np.asarray(ys, dtype=float).reshape(len(ys), B, -1)

    def forward(tape):
        h = tape.state("h", 0, np.zeros((B, len(P["b"])), complex))
        for t in range(1, len(xs) + 1):
            h = tape.state("h", t, tape.unit("", t, "tanh", np.tanh(
                P["b"] + tape.read("h", t - 1, h) @ P["W"].T + xs[t - 1] @ P["U"].T)))
            d = P["c"] + h @ P["V"].T - ys[t - 1]
            e = (d * d).sum()      # not d ** 2, nor e / B: of an overflowing d, their complex
            tape.loss(t, e.real / B + 1j * (e.imag / B))   # arithmetic makes Im NaN (inf * 0)
    return forward


def stacked(P, xs, ys, B=1, layers=2):
    """A DeepRNN of kind "stacked": h1(t) = tanh(b1 + W1 h1(t-1) + U1 x(t)), h2(t) =
    tanh(b2 + W2 h2(t-1) + U2 h1(t)), o(t) = c + V h2(t)."""
    xs, ys = _rows(xs, B), np.asarray(ys).reshape(-1, B)

    def forward(tape):
        H = len(P["b1"])
        hs = [tape.state(f"h{k}", 0, np.zeros((B, H), complex)) for k in range(1, layers + 1)]
        for t in range(1, len(xs) + 1):
            below = None
            for k in range(1, layers + 1):
                drive = _drive(P[f"U{k}"], xs[t - 1]) if k == 1 else below @ P[f"U{k}"].T
                below = hs[k - 1] = tape.state(f"h{k}", t, tape.unit("", t, "tanh", np.tanh(
                    P[f"b{k}"] + tape.read(f"h{k}", t - 1, hs[k - 1]) @ P[f"W{k}"].T + drive)))
            tape.loss(t, cross_entropy(P["c"] + below @ P["V"].T, ys[t - 1]).mean())
    return forward


# ------------------------------------------------------------------ what the page shows

def derivatives(forward, sites, shape_of):
    """Run ``forward`` once unperturbed and once per unit of every site (part, k) of ``sites``:
    (tape, {(part, k): (dL (T_L, size) of each loss term, {(part2, k2): d v (size2, size)})})."""
    base = Tape({})
    forward(base)
    out = {}
    for site in sites:
        size = int(np.prod(shape_of(site)))
        dl = {t: np.zeros(size) for t in base.losses}
        dv = {}
        for j in range(size):
            d = np.zeros(size, complex)
            d[j] = 1j * EPS
            tape = Tape({site: d.reshape(shape_of(site))})
            forward(tape)
            for t, v in tape.losses.items():
                dl[t][j] = v.imag / EPS
            for key, v in tape.states.items():
                dv.setdefault(key, np.zeros((v.size, size)))[:, j] = v.imag.reshape(-1) / EPS
        out[site] = (dl, dv)
    return base, out


def oracle(forward, parts, steps):
    """Every number of the page's diagnostics for the state parts ``parts`` ({part: range of
    k}), from ``forward``: {"base": the unperturbed tape, "grad": {(part, k): ∂L/∂v(k)},
    "conn": {part: (T_L, K) ‖∂L(t)/∂v(k)‖}, "d": the derivatives of :func:`derivatives`,
    "forward": ``forward``} (the Jacobians: :func:`jacobians` of ``forward``)."""
    base = Tape({})
    forward(base)
    sites = [(p, k) for p, ks in parts.items() for k in ks]
    base, d = derivatives(forward, sites, lambda site: base.states[site].shape)
    T_L = max(base.losses)
    grad, conn = {}, {}
    for p, ks in parts.items():
        width = max(k for k in ks if k <= steps)
        m = np.zeros((T_L, width))
        for k in ks:
            dl = d[(p, k)][0]
            grad[(p, k)] = sum(dl.values())
            if 1 <= k <= width:
                for t, row in dl.items():
                    m[t - 1, k - 1] = norm(row)
        conn[p] = m
    return {"base": base, "grad": grad, "conn": conn, "d": d, "forward": forward}


def jacobians(forward, part, steps, backward=False):
    """J(k) = ∂v(k)/∂v(k-1) for k = 1..steps (``backward``: ∂v(k)/∂v(k+1)), each by perturbing
    v(k-1) as step k reads it (:meth:`Tape.read`)."""
    base = Tape({})
    forward(base)
    reads = [("read", part, k + 1 if backward else k - 1) for k in range(1, steps + 1)]
    _, d = derivatives(forward, reads, lambda site: base.states[site[1:]].shape)
    return np.array([d[site][1][(part, k)] for k, site in zip(range(1, steps + 1), reads)])


def saturation(tape, chain="", tol=0.05, keep=None):
    """Per step t = 1..T of ``chain``: the fraction of tanh units with 1 - y² < tol and sigmoid
    units with y (1 - y) < tol / 4 (rows of ``keep`` (T, B) only, when given); NaN at a step
    with a NaN unit (the page shows no fraction there)."""
    steps = sorted(t for c, t in tape.units if c == chain)
    out = []
    for t in steps:
        saturated = units = 0
        for kind, v in tape.units[(chain, t)]:
            y = v.real
            if keep is not None:
                y = y[np.asarray(keep[t - 1], bool)]
            if np.isnan(y).any():
                units = -1
                break
            slope = 1 - y * y if kind == "tanh" else y * (1 - y)
            saturated += np.count_nonzero(slope < tol * (1.0 if kind == "tanh" else 0.25))
            units += y.size
        out.append(saturated / units if units > 0 else np.nan)   # every row padded, or NaN
    return np.array(out)


def norm(v):
    """The 2-norm of ``v`` without overflow (entries of 1e200 have a norm; their squares are
    inf); NaN or inf when an entry is."""
    v = np.ravel(np.asarray(v, dtype=float))
    if not np.isfinite(v).all():
        return np.nan if np.isnan(v).any() else np.inf
    scale = np.abs(v).max() if v.size else 0.0
    return 0.0 if scale == 0 else scale * np.linalg.norm(v / scale)


def six(v):
    """The number as the page writes it: six significant digits (None for no number)."""
    return None if v is None or not np.isfinite(v) else float(f"{float(v):.6g}")


def shown_is(got, want, what, rel=1e-10):
    """The page's six-digit ``got`` is ``want`` rounded to six digits: ``want`` within 1e-10 of
    the number shown, up to the rounding (half a unit of the sixth digit).  A non-finite
    ``want`` must be shown as what it is, "NaN", "Infinity" or "-Infinity" (a NaN shown for
    an infinity, or the reverse, is a wrong number), or as None, the page's "no number" (a gap
    in a plot, "n/a"); a finite ``want`` must be shown as a number, never None or a string."""
    got = list(np.ravel(np.array(got, dtype=object)))
    want = np.ravel(np.asarray(want, dtype=float))
    assert len(got) == len(want), f"{what}: {len(got)} numbers shown, {len(want)} computed"
    for i, (g, w) in enumerate(zip(got, want)):
        if not np.isfinite(w):
            kind = "NaN" if np.isnan(w) else "Infinity" if w > 0 else "-Infinity"
            assert g is None or g == kind, f"{what}[{i}]: shown {g!r}, computed {w}"
            continue
        assert isinstance(g, (int, float)) and not isinstance(g, bool) and np.isfinite(g), \
            f"{what}[{i}]: shown {g!r}, computed {w!r}"
        if w == 0:
            assert g == 0, f"{what}[{i}]: shown {g}, computed 0"
            continue
        half = 0.5 * 10.0 ** (np.floor(np.log10(abs(w))) - 5)
        assert abs(g - w) <= half * (1 + 1e-9) + rel * abs(w), \
            f"{what}[{i}]: shown {g}, computed {w!r} (six digits: {six(w)})"


def lag_decay(jacs, max_lag, ends):
    """rnn.lag_decay's definition: the geometric mean over ``ends`` evenly spaced end steps of
    ‖J(t) J(t-1) ... J(t-k+1)‖₂, k = 1..max_lag, and exp of its log-linear fit (rate, scale)."""
    T = len(jacs)
    last = np.unique(np.linspace(T - 1, max_lag - 1, min(ends, T - max_lag + 1)).round().astype(int))
    # each J scaled by an exact power of two (its own, so that the products neither underflow
    # nor overflow: 30 Jacobians of 1e-13 are 1e-390), the powers added back to the log
    shifts = [int(np.frexp(np.abs(j).max())[1]) if np.abs(j).max() > 0 else 0 for j in jacs]
    logs = []
    for t in last:
        product, row, twos = np.eye(jacs.shape[1]), [], 0
        for k in range(max_lag):
            product = product @ np.ldexp(jacs[t - k], -shifts[t - k])
            twos += shifts[t - k]
            with np.errstate(divide="ignore"):
                row.append(np.log(np.linalg.norm(product, 2)) + twos * np.log(2.0))
        logs.append(row)
    mean = np.mean(logs, axis=0)
    if max_lag > 1:
        slope, intercept = np.polyfit(np.arange(1, max_lag + 1), mean, 1)
    else:
        slope, intercept = mean[0], 0.0
    return np.exp(mean), np.exp(slope), np.exp(intercept)


def check_bundle(bundle, o, parts, part=None, steps=None, backward=False, keep=None):
    """Every number of an explorer bundle against the oracle ``o`` (:func:`oracle`): the loss,
    each L(t), each state part's v(k) (``parts``: {part: steps k}), its norm and ‖∂L/∂v(k)‖,
    the connectivity of each part, and with ``part`` the spectra, eq. 10.52 ratio and lag decay
    of its Jacobians over ``steps`` (``backward``: ∂v(t)/∂v(t+1)); the saturation (of ``keep``'s
    rows; a dict {chain: keep} masks those chains alone).  Returns the list of discrepancies (empty when every number is right)."""
    base, bad = o["base"], []

    def cmp(got, want, what):
        try:
            shown_is(got, want, what)
        except AssertionError as e:
            bad.append(str(e))
    terms = sorted(base.losses)
    cmp([bundle["loss"]], [sum(base.losses[t].real for t in terms)], "loss")
    V = bundle["vars"]
    cmp([V["L"]["norm"][str(t)] for t in terms], [abs(base.losses[t].real) for t in terms], "|L(t)|")
    for p, ks in parts.items():
        for k in ks:
            if str(k) not in V[p]["norm"]:
                bad.append(f"{p}({k}) is not on the page")
                continue
            value = base.states[(p, k)].real
            cmp([V[p]["norm"][str(k)]], [norm(value)], f"‖{p}({k})‖")
            if str(k) in V[p]["value"]:
                cmp(V[p]["value"][str(k)], value.reshape(-1)[:64], f"{p}({k})")
            cmp([V[p]["gnorm"][str(k)]], [norm(o["grad"][(p, k)])], f"‖∂L/∂{p}({k})‖")
        heat = bundle["diag"]["connectivity"].get(p)
        if heat is None or not heat["exact"]:
            bad.append(f"no exact connectivity of {p}")
        else:
            cmp(heat["cells"], o["conn"][p], f"connectivity ‖∂L(t)/∂{p}(k)‖")
    d = bundle["diag"]
    if part is not None:
        J = jacobians(o["forward"], part, steps, backward)
        cmp(d["spectra"]["norm"], [np.linalg.norm(j, 2) for j in J], f"‖J(t)‖₂ of {part}")
        cmp(d["spectra"]["radius"], [np.abs(np.linalg.eigvals(j)).max() for j in J],
            f"ρ(J(t)) of {part}")
        grads = [o["grad"][(part, k)].reshape(-1) for k in range(1, steps + 1)]
        cmp(d["ratio"][:steps], [norm(g @ j) / norm(g) for g, j in zip(grads, J)],
            f"eq. 10.52 ratio of {part}")
        norms, rate, scale = lag_decay(J[::-1] if backward else J, min(len(J), 30), 3)
        cmp(d["lag"]["norms"], norms, f"lag decay of {part}")
        cmp([d["lag"]["rate"], d["lag"]["scale"]], [rate, scale], f"lag decay fit of {part}")
    sat = d["saturation"]
    if isinstance(sat, dict):
        for chain, shown in sat.items():
            want = saturation(base, chain, keep=keep.get(chain) if isinstance(keep, dict) else keep)
            cmp(shown[:len(want)], want, f"saturation of the {chain}")
            if any(v is not None for v in shown[len(want):]):
                bad.append(f"saturation of the {chain} past its steps: {shown[len(want):]}")
    else:
        chains = sorted({c for c, _ in base.units})
        pooled = Tape({})
        for (c, t), units in base.units.items():
            pooled.units.setdefault(("", t), []).extend(units)
        cmp(sat, saturation(pooled, "", keep=keep), "saturation")
    return bad


def later(forward, prefix):
    """``forward`` over a whole sequence seen from step ``prefix`` on: its steps prefix + k as
    k (states from k = 0), the loss terms of those steps only; perturbations of step k reach
    step prefix + k.  The oracle of the next chunk of truncated BPTT, from all that a run over
    the first ``prefix`` steps carries into it."""
    def shift(key):
        if key[0] == "read":
            return ("read", key[1], key[2] + prefix)
        return (key[0], key[1] + prefix)

    def shifted(tape):
        whole = Tape({shift(k): v for k, v in tape.pert.items()})
        forward(whole)
        tape.states = {(p, k - prefix): v for (p, k), v in whole.states.items() if k >= prefix}
        tape.losses = {t - prefix: v for t, v in whole.losses.items() if t > prefix}
        tape.units = {(c, t - prefix): v for (c, t), v in whole.units.items() if t > prefix}
        tape.values = {(n, t - prefix): v for (n, t), v in whole.values.items() if t > prefix}
    return shifted
