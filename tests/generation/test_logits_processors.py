"""Logits processors and stopping criteria: each hugkit class equal (bitwise) to transformers' on random scores;
build_processors in transformers' order; greedy/sampling decoding with every GenerationConfig processor
token-identical to transformers' generate; the call protocol works for user and transformers processors."""

import math

import pytest
import torch
import transformers
import transformers.generation.logits_process as tlp
import transformers.generation.stopping_criteria as tsc

import hugkit
from hugkit.generation import GenerationConfig
from hugkit.generation import logits as hlp
from hugkit.generation import stopping as hsc
from hugkit.generation.runners import DecoderOnlyRunner

from .conftest import EOS, VOCAB

ROWS = 6


def _ids(length: int, seed: int = 0) -> torch.Tensor:
    """Random ids with repeats (small alphabet), so n-gram and repetition rules fire."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 12, (ROWS, length), generator=generator)


def _scores(seed: int = 0, vocab: int = VOCAB) -> torch.Tensor:
    generator = torch.Generator().manual_seed(100 + seed)
    scores = torch.randn(ROWS, vocab, generator=generator) * 3
    scores[0, 5] = scores[0, 6]  # a tie
    return scores


def _equal(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert torch.equal(got.nan_to_num(), expected.nan_to_num()), (got - expected).abs().nan_to_num().max()
    assert torch.equal(got.isnan(), expected.isnan()) and torch.equal(got.isinf(), expected.isinf())


# (class name, constructor arguments); each pair is built in hugkit and in transformers and applied to the same
# ids and scores at several lengths.
CASES = [
    ("MinLengthLogitsProcessor", dict(min_length=7, eos_token_id=[3, 9])),
    ("MinNewTokensLengthLogitsProcessor", dict(prompt_length_to_skip=4, min_new_tokens=3, eos_token_id=9)),
    ("TemperatureLogitsWarper", dict(temperature=0.7)),
    ("RepetitionPenaltyLogitsProcessor", dict(penalty=1.3)),
    ("RepetitionPenaltyLogitsProcessor", dict(penalty=0.6, prompt_ignore_length=2)),
    ("RepetitionPenaltyLogitsProcessor", dict(penalty=1.5, prompt_ignore_length=torch.tensor([0, 1, 2, 3, 0, 5]))),
    ("TopKLogitsWarper", dict(top_k=5)),
    ("TopKLogitsWarper", dict(top_k=1, min_tokens_to_keep=3)),
    ("TopPLogitsWarper", dict(top_p=0.8)),
    ("TopPLogitsWarper", dict(top_p=0.3, min_tokens_to_keep=2)),
    ("TopHLogitsWarper", dict(top_h=0.4)),
    ("MinPLogitsWarper", dict(min_p=0.2)),
    ("MinPLogitsWarper", dict(min_p=0.9, min_tokens_to_keep=3)),
    ("TypicalLogitsWarper", dict(mass=0.7)),
    ("TypicalLogitsWarper", dict(mass=0.2, min_tokens_to_keep=2)),
    ("EpsilonLogitsWarper", dict(epsilon=0.02)),
    ("EpsilonLogitsWarper", dict(epsilon=0.3, min_tokens_to_keep=2)),
    ("EtaLogitsWarper", dict(epsilon=0.01)),
    ("EtaLogitsWarper", dict(epsilon=0.5, min_tokens_to_keep=3)),
    ("NoRepeatNGramLogitsProcessor", dict(ngram_size=1)),
    ("NoRepeatNGramLogitsProcessor", dict(ngram_size=2)),
    ("NoRepeatNGramLogitsProcessor", dict(ngram_size=3)),
    ("SequenceBiasLogitsProcessor",
     dict(sequence_bias={(4,): 2.5, (1, 2): -1.0, (3, 4, 5): 4.0, (2, 5): 1.5, (7, 5): 0.5})),
    ("SequenceBiasLogitsProcessor", dict(sequence_bias=[[[6], -3.0], [[1, 6], 10.0]])),
    ("NoBadWordsLogitsProcessor", dict(bad_words_ids=[[4], [1, 2], [3, 4, 5], [9]], eos_token_id=9)),
    ("NoBadWordsLogitsProcessor", dict(bad_words_ids=[[2, 3], [5, 3], [7]])),
    ("ForcedBOSTokenLogitsProcessor", dict(bos_token_id=4)),
    ("ForcedEOSTokenLogitsProcessor", dict(max_length=5, eos_token_id=[3, 8])),
    ("InfNanRemoveLogitsProcessor", {}),
    ("ExponentialDecayLengthPenalty",
     dict(exponential_decay_length_penalty=(1, 1.5), eos_token_id=[3, 9], input_ids_seq_length=2)),
    ("LogitNormalization", {}),
    ("SuppressTokensLogitsProcessor", dict(suppress_tokens=[1, 4, 50])),
    ("SuppressTokensAtBeginLogitsProcessor", dict(begin_suppress_tokens=[2, 3], begin_index=4)),
]


@pytest.mark.parametrize("name, kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_processor_matches_transformers(name, kwargs):
    ours = getattr(hlp, name)(**kwargs)
    theirs = getattr(tlp, name)(**kwargs)
    assert isinstance(ours, hlp.LogitsProcessor)
    for step, length in enumerate((1, 2, 4, 5, 7, 9)):
        ids, scores = _ids(length, step), _scores(step)
        if name == "InfNanRemoveLogitsProcessor":
            scores[0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
        if name in ("LogitNormalization", "TypicalLogitsWarper", "MinPLogitsWarper"):
            scores[1, :4] = -float("inf")
        _equal(ours(ids, scores.clone()), theirs(ids, scores.clone()))


def test_encoder_processors_match_transformers():
    encoder_ids = _ids(8, 7)[:2]  # two inputs, three rows each
    for name, kwargs in (
        ("EncoderRepetitionPenaltyLogitsProcessor", dict(penalty=1.7, encoder_input_ids=encoder_ids)),
        ("EncoderNoRepeatNGramLogitsProcessor", dict(encoder_ngram_size=2, encoder_input_ids=encoder_ids)),
        ("EncoderNoRepeatNGramLogitsProcessor", dict(encoder_ngram_size=3, encoder_input_ids=encoder_ids)),
    ):
        ours, theirs = getattr(hlp, name)(**kwargs), getattr(tlp, name)(**kwargs)
        for length in (1, 3, 6):
            ids, scores = _ids(length, length), _scores(length)
            _equal(ours(ids, scores.clone()), theirs(ids, scores.clone()))


def test_prefix_constrained_matches_transformers():
    def allowed(batch_id, row):
        return [int(row[-1]) % 7, 10 + batch_id] if batch_id else [3]

    ours, theirs = hlp.PrefixConstrainedLogitsProcessor(allowed, 3), tlp.PrefixConstrainedLogitsProcessor(allowed, 3)
    ids, scores = _ids(4), _scores()
    scores[:3, 3] = -float("inf")  # input 0: every beam's only allowed token is -inf -> the constraint wins
    _equal(ours(ids, scores.clone()), theirs(ids, scores.clone()))


def test_stopping_criteria_match_transformers():
    ids = _ids(6)
    ids[2, -1] = 9
    ids[4, -2] = 3
    for name, kwargs in (
        ("MaxLengthCriteria", dict(max_length=6)), ("MaxLengthCriteria", dict(max_length=7)),
        ("EosTokenCriteria", dict(eos_token_id=[9, 3])), ("EosTokenCriteria", dict(eos_token_id=9)),
        ("MaxTimeCriteria", dict(max_time=5.0)), ("MaxTimeCriteria", dict(max_time=1.0, initial_timestamp=0.0)),
    ):
        ours, theirs = getattr(hsc, name)(**kwargs), getattr(tsc, name)(**kwargs)
        assert torch.equal(ours(ids, None), theirs(ids, None)), name
    both = hsc.StoppingCriteriaList([hsc.MaxLengthCriteria(9), hsc.EosTokenCriteria([9, 3])])
    assert torch.equal(both(ids, None), torch.isin(ids[:, -1], torch.tensor([9, 3])))
    assert bool(both(ids, None)[2])
    assert both.max_length == 9
    # user criteria (plain callables, transformers' classes) merge in; one of a built class replaces it
    config = GenerationConfig(eos_token_id=[9, 3])
    user = [lambda input_ids, scores, **kw: input_ids[:, -1] == 0, tsc.MaxLengthCriteria(6)]
    criteria = hsc.build_stopping_criteria(config, user, max_length=20)
    assert [type(c).__name__ for c in criteria] == ["MaxLengthCriteria", "EosTokenCriteria", "function"]
    assert criteria[0] is user[1]
    assert criteria(ids, None).all()


# --- build_processors: the order and arguments of transformers' _get_logits_processor ------------------------

ALL_FIELDS = dict(
    sequence_bias={(5,): 1.0, (2, 7): -2.0}, repetition_penalty=1.2, no_repeat_ngram_size=2,
    bad_words_ids=[[11], [3, 4]], min_length=4, min_new_tokens=2, forced_bos_token_id=1, forced_eos_token_id=EOS,
    remove_invalid_values=True, suppress_tokens=[13, 14], begin_suppress_tokens=[15], renormalize_logits=True,
    eos_token_id=[EOS, 20],
)
SAMPLING = dict(do_sample=True, temperature=0.8, top_k=30, top_p=0.9, min_p=0.05, typical_p=0.95, epsilon_cutoff=1e-4,
                eta_cutoff=1e-3, top_h=0.9)


def _transformers_processors(reference, fields, prompt_length, max_length, mask=None, user=None):
    config = transformers.GenerationConfig(**fields, max_length=max_length)
    if fields.get("min_new_tokens") is not None:  # what generate's _prepare_generated_length does
        config.min_length = fields["min_new_tokens"] + prompt_length
    reference._prepare_special_tokens(config, True, device="cpu")
    return reference._get_logits_processor(
        config, input_ids_seq_length=prompt_length, device="cpu", logits_processor=user,
        model_kwargs={"attention_mask": mask} if mask is not None else None,
    )


@pytest.mark.parametrize("sampling", [False, True])
@pytest.mark.parametrize("num_beams", [1, 3])
def test_build_processors_matches_transformers_order_and_values(tiny_causal_lm, sampling, num_beams):
    _, reference = tiny_causal_lm("llama")
    fields = dict(ALL_FIELDS, num_beams=num_beams, **(SAMPLING if sampling else {}))
    mask = torch.ones(ROWS, 5, dtype=torch.long)
    mask[1, :2] = 0
    theirs = _transformers_processors(reference, fields, 5, 12, mask)
    ours = hlp.build_processors(GenerationConfig(**fields), 5, "cpu", attention_mask=mask, max_length=12)
    assert isinstance(ours, hlp.LogitsProcessorList)
    assert [type(p).__name__ for p in ours] == [type(p).__name__ for p in theirs]
    for ours_p, theirs_p in zip(ours, theirs):
        if hasattr(theirs_p, "min_tokens_to_keep"):
            assert ours_p.min_tokens_to_keep == theirs_p.min_tokens_to_keep
    for length in (5, 6, 7, 11):
        ids, scores = _ids(length, length), _scores(length)
        _equal(ours(ids, scores.clone()), theirs(ids, scores.clone()))


def test_begin_index_with_a_forced_bos_and_a_one_token_prompt(tiny_causal_lm):
    _, reference = tiny_causal_lm("llama")
    for fields, prompt_length in (
        (dict(begin_suppress_tokens=[4], forced_bos_token_id=2), 1),
        (dict(begin_suppress_tokens=[4], forced_bos_token_id=2), 3),
        (dict(begin_suppress_tokens=[4]), 1),
    ):
        theirs = _transformers_processors(reference, fields, prompt_length, 10)
        ours = hlp.build_processors(GenerationConfig(**fields), prompt_length, "cpu", max_length=10)
        assert ours[-1].begin_index == theirs[-1].begin_index


def test_user_processors_merge_like_transformers(tiny_causal_lm):
    _, reference = tiny_causal_lm("llama")

    class Mine(hlp.LogitsProcessor):
        def __call__(self, input_ids, scores):
            return scores + 1.0

    def plain(input_ids, scores):
        return scores * 2.0

    fields = dict(repetition_penalty=1.5, no_repeat_ngram_size=2, do_sample=True, top_k=5, eos_token_id=EOS)
    replacement = tlp.RepetitionPenaltyLogitsProcessor(3.0)  # transformers' own class: replaces the built one
    user = [Mine(), replacement, plain]
    ours = hlp.build_processors(GenerationConfig(**fields), 4, "cpu", user_processors=user)
    assert [type(p).__name__ for p in ours] == [
        "RepetitionPenaltyLogitsProcessor", "NoRepeatNGramLogitsProcessor", "Mine", "function", "TopKLogitsWarper",
    ]
    assert ours[0] is replacement
    theirs = _transformers_processors(reference, fields, 4, 20, user=tlp.LogitsProcessorList([
        Mine(), tlp.RepetitionPenaltyLogitsProcessor(3.0), plain,
    ]))
    ids, scores = _ids(6), _scores()
    _equal(ours(ids, scores.clone()), theirs(ids, scores.clone()))


def test_processor_list_passes_keyword_arguments():
    class NeedsStep(hlp.LogitsProcessor):
        def __call__(self, input_ids, scores, step):
            return scores + step

    processors = hlp.LogitsProcessorList([NeedsStep(), lambda ids, scores: scores * 2])
    ids, scores = _ids(3), _scores()
    _equal(processors(ids, scores, step=1.0), (scores + 1.0) * 2)
    with pytest.raises(ValueError, match="needs step"):
        processors(ids, scores)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: hlp.TopKLogitsWarper(0), "top_k should be an int >= 1"),
        (lambda: hlp.TopPLogitsWarper(1.5), r"top_p should be a float in \[0, 1\]"),
        (lambda: hlp.TypicalLogitsWarper(1.0), r"typical_p should be a float in \(0, 1\)"),
        (lambda: hlp.TemperatureLogitsWarper(0.0), "do_sample=False"),
        (lambda: hlp.NoRepeatNGramLogitsProcessor(0), "no_repeat_ngram_size should be an int >= 1"),
        (lambda: hlp.NoBadWordsLogitsProcessor([3, 4]), "list of token-id lists"),
        (lambda: hlp.SequenceBiasLogitsProcessor({(3,): 1}), "float biases"),
        (lambda: hlp.MinLengthLogitsProcessor(3, [-1]), r"token ids \(ints >= 0\)"),
        (lambda: hlp.EtaLogitsWarper(2.0), "eta_cutoff should be a float in"),
    ],
)
def test_bad_processor_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_biased_token_outside_the_vocabulary():
    with pytest.raises(ValueError, match="outside it: \\[500\\]"):
        hlp.NoBadWordsLogitsProcessor([[1, 500]])(_ids(3), _scores())


# --- end to end: a greedy/sampling loop over hugkit's runner with build_processors vs transformers' generate ------


def _decode(model, ids, mask, config: GenerationConfig, max_new: int):
    """The decoder-only token loop (greedy or sampling) over build_processors and build_stopping_criteria."""
    prompt_length = ids.shape[1]
    runner = DecoderOnlyRunner(model, ids, mask, max_new)
    processors = hlp.build_processors(config, prompt_length, ids.device, attention_mask=mask,
                                      max_length=prompt_length + max_new)
    stopping = hsc.build_stopping_criteria(config, max_length=prompt_length + max_new)
    pad = config.pad_token_id if config.pad_token_id is not None else config.eos_token_ids()[0]
    sequence, logits, scores = ids, runner.first_logits(), []
    unfinished = torch.ones(ids.shape[0], dtype=torch.bool)
    while True:
        processed = processors(sequence, logits)
        scores.append(processed)
        if config.get("do_sample"):
            tokens = torch.multinomial(torch.softmax(processed, dim=-1), num_samples=1).squeeze(1)
        else:
            tokens = torch.argmax(processed, dim=-1)
        tokens = torch.where(unfinished, tokens, pad)
        sequence = torch.cat([sequence, tokens[:, None]], dim=1)
        unfinished &= ~stopping(sequence, tuple(scores))
        if not unfinished.any():
            return sequence, scores
        logits = runner.step(tokens)


E2E = [
    dict(sequence_bias={(40,): 5.0, (40, 41): 8.0}),
    dict(bad_words_ids=[[14], [85, 46], [13, 14, 10]], repetition_penalty=1.4),
    dict(suppress_tokens=[14, 85, 75], begin_suppress_tokens=[48, 12]),
    dict(forced_eos_token_id=EOS, min_new_tokens=3, no_repeat_ngram_size=2),
    dict(renormalize_logits=True, remove_invalid_values=True, repetition_penalty=0.8),
    dict(exponential_decay_length_penalty=(2, 3.0)),
    dict(do_sample=True, typical_p=0.9, temperature=1.3),
    dict(do_sample=True, epsilon_cutoff=0.02, top_k=0),
    dict(do_sample=True, eta_cutoff=0.01, top_p=0.95, top_k=0),
    dict(do_sample=True, min_p=0.1, top_k=20, renormalize_logits=True),
]


@pytest.mark.parametrize("fields", E2E, ids=[",".join(f) for f in E2E])
def test_decoding_with_processors_matches_transformers_generate(tiny_causal_lm, prompts, fields):
    folder, reference = tiny_causal_lm("llama")
    model = hugkit.AutoModelForCausalLM.from_pretrained(folder)
    ids, mask = prompts
    fields = dict(fields, pad_token_id=0, eos_token_id=fields.get("eos_token_id", EOS))
    torch.manual_seed(3)
    expected = reference.generate(ids, attention_mask=mask, max_new_tokens=10, return_dict_in_generate=True,
                                  output_scores=True, **fields)
    torch.manual_seed(3)
    got, scores = _decode(model, ids, mask, GenerationConfig(**fields), 10)
    assert torch.equal(got, expected.sequences)
    for ours, theirs in zip(scores, expected.scores):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_forced_bos_with_a_one_token_prompt_matches_transformers(tiny_causal_lm):
    folder, reference = tiny_causal_lm("gpt2")
    model = hugkit.AutoModelForCausalLM.from_pretrained(folder)
    ids, mask = torch.tensor([[5], [7]]), torch.ones(2, 1, dtype=torch.long)
    fields = dict(forced_bos_token_id=33, begin_suppress_tokens=[50, 60], pad_token_id=0, eos_token_id=EOS)
    expected = reference.generate(ids, attention_mask=mask, max_new_tokens=5, **fields)
    got, _ = _decode(model, ids, mask, GenerationConfig(**fields), 5)
    assert torch.equal(got, expected) and (got[:, 1] == 33).all()


def test_loop_call_without_keywords_still_works():
    config = GenerationConfig(repetition_penalty=1.2, no_repeat_ngram_size=2, eos_token_id=EOS, min_new_tokens=2)
    processors = hlp.build_processors(config, 4, torch.device("cpu"))
    scores = _scores()
    for process in processors:  # loop.py iterates the list
        scores = process(_ids(5), scores)
    assert not math.isfinite(float(scores[:, EOS].max()))
