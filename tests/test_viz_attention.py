"""The attention figure beside figure 10.12, drawn from a running rnn.EncoderDecoder(attention=
"additive"): the encoder's states feed the memory once, the memory feeds α and ctx of every
decoder step, and C = h(n_x) is only the decoder's initial state."""

import viz
from viz_svg import parse

STEPS = ("1", "2", "...", "n y ")     # the last step: n with a subscript y


def _figure():
    nodes, edges, clusters = parse(viz.render(viz.figure("10.12-attention")))
    text = {nid: n["text"] for nid, n in nodes.items()}
    return text, {(text[a], text[b]) for a, b, _ in edges}, clusters


def test_the_attention_figure_has_an_encoder_and_a_decoder_with_alpha_and_ctx_at_every_step():
    text, _, clusters = _figure()
    assert sorted(clusters.values()) == ["Decoder", "Encoder"]
    for t in STEPS:
        assert {f"α ({t})", f"ctx ({t})", f"s ({t})", f"y ({t})"} <= set(text.values())


def test_every_encoder_state_feeds_the_memory_and_the_memory_every_decoder_step():
    _, pairs, _ = _figure()
    assert {(f"h ({k})", "memory") for k in ("1", "2", "...", "n x ")} <= pairs
    for t in STEPS:
        assert {("memory", f"α ({t})"), ("memory", f"ctx ({t})"), (f"α ({t})", f"ctx ({t})"),
                (f"ctx ({t})", f"s ({t})")} <= pairs


def test_c_is_the_last_encoder_state_and_only_the_first_decoder_steps_input():
    _, pairs, _ = _figure()
    assert {src for src, dst in pairs if dst == "C"} == {"h (n x )"}
    assert {dst for src, dst in pairs if src == "C"} == {"s (1)", "α (1)"}
