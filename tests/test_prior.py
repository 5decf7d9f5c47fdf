"""The occurrence head's prior (``model.occurrence_prior``): the head adds to ``baseline-learned``'s logit.

What could go wrong: the prior of a training day fitted on that day (in-sample optimism the head would
learn to trust), the untrained head drifting from the prior, the prior lost on save or ignored at forecast
time, a model directory without its prior loading silently.
"""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pytest
import torch

from pipeline.cameo.labels import LEVELS, label_space
from pipeline.core.config import ConfigError, ForecastConfig, ModelConfig, load_config
from pipeline.model.forecaster import PRIOR_DIR, EventForecaster, ModelFilesError, OccurrenceHead
from pipeline.model.learned import fit_out_of_fold, training_days
from tests.conftest import REPO, SAMPLE_COUNTRIES
from tests.test_learned import _persistent_outcomes

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.usefixtures("one_torch_thread")]


def test_out_of_fold_fits_never_see_their_day():
    o = _persistent_outcomes(n_days=30)
    days = training_days(o, o.days[24])
    targets = o.days[12:24]
    full, oof = fit_out_of_fold(o, days, targets, 3, "logistic", 20_000)
    assert full.fitted_on == [str(d) for d in days]
    assert set(oof) == set(targets)
    assert len({id(m) for m in oof.values()}) == 3  # one fit per block of 4 contiguous days
    for d, model in oof.items():
        seen = set(model.fitted_on)
        assert str(d) not in seen
        block = [t for t, m in oof.items() if m is model]
        assert max(block) - min(block) == dt.timedelta(days=3)  # contiguous
        assert not seen & {str(t) for t in block} and len(seen) == len(days) - 4


def test_logits_follow_the_label_space_and_the_hierarchy():
    o = _persistent_outcomes(n_days=20)
    full, _ = fit_out_of_fold(o, training_days(o, o.days[15]), o.days[10:15], 2, "logistic", 20_000)
    labels = label_space()
    n = sum(len(labels[lv]) for lv in LEVELS)
    X = np.random.default_rng(0).random((5, n, len(full.features)), dtype=np.float32)
    z = full.logits(X)
    assert z.shape == (5, n) and z.dtype == np.float32
    p, offset, per = 1 / (1 + np.exp(-z.astype(float))), 0, {}
    for lv in LEVELS:
        per[lv], offset = p[:, offset:offset + len(labels[lv])], offset + len(labels[lv])
    root_of_event = labels.parent_matrix("event", "root").astype(bool)  # (L_event, L_root)
    for e, r in zip(*np.nonzero(root_of_event)):
        assert (per["root"][:, r] >= per["event"][:, e] - 1e-5).all()  # parent ≥ child
    with pytest.raises(ValueError, match="labels"):
        full.logits(X[:, :10])


def test_untrained_head_is_exactly_the_prior():
    torch.manual_seed(0)
    n = sum(len(label_space()[lv]) for lv in LEVELS)
    head = OccurrenceHead(16, history_dim=4, encoder=True, prior=True)
    enc, mask = torch.randn(3, 5, 16), torch.ones(3, 5, dtype=torch.long)
    history, prior = torch.randn(3, n, 4), torch.randn(3, n)
    assert torch.equal(head(enc, mask, history, prior), prior)
    with pytest.raises(ValueError, match="prior"):
        head(enc, mask, history)
    plain = OccurrenceHead(16, history_dim=4, encoder=True)  # without a prior f(h) is not zero at the start
    assert not torch.equal(plain(enc, mask, history), torch.zeros(3, n))


def test_head_without_history_term_is_prior_plus_encoder():
    torch.manual_seed(0)
    n = sum(len(label_space()[lv]) for lv in LEVELS)
    head = OccurrenceHead(16, history_dim=None, encoder=True, prior=True)
    assert head.history is None
    enc, mask, prior = torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.long), torch.randn(2, n)
    assert torch.equal(head(enc, mask, None, prior), prior)  # g starts at zero
    torch.nn.init.normal_(head.mlp[-1].weight)
    m = mask.unsqueeze(-1).float()
    g = head.mlp((enc * m).sum(1) / m.sum(1))
    assert torch.allclose(head(enc, mask, None, prior), prior + g)


def test_config_checks():
    with pytest.raises(ConfigError, match="occurrence_prior needs"):
        ModelConfig(occurrence_prior=True, history_features=False)
    with pytest.raises(ConfigError, match="prior_folds"):
        ModelConfig(prior_folds=1)
    with pytest.raises(ConfigError, match="no term"):
        ModelConfig(occurrence_history_term=False, occurrence_encoder=False)
    ModelConfig(occurrence_prior=True, occurrence_history_term=False, occurrence_encoder=False)  # the prior alone


@pytest.fixture(scope="module")
def prior_run(sample_descriptors, embedder, tmp_path_factory):
    from pipeline.model.train import train

    cfg = load_config(REPO / "configs" / "tiny.yaml")
    cfg.dataset.countries = list(SAMPLE_COUNTRIES)
    cfg.train.run, cfg.train.models_dir = "prior-tiny", tmp_path_factory.mktemp("models")
    cfg.forecast.learned_cache_dir = cfg.train.models_dir / "cache"  # resolved at load: under the models moved here
    cfg.train.epochs, cfg.train.max_steps, cfg.train.val_generate = 1, 3, 0
    cfg.train.max_new_tokens, cfg.model.max_target_tokens = 24, 48
    cfg.model.occurrence_prior, cfg.model.prior_folds = True, 2
    cfg.forecast.learned_estimator, cfg.forecast.learned_max_rows = "logistic", 20_000
    return train(cfg, sample_descriptors, embedder=embedder).run_dir


def test_trained_model_keeps_its_prior_and_forecasts_with_it(prior_run, sample_descriptors, embedder, tmp_path):
    import json

    from pipeline.core.lake import Lake
    from pipeline.forecast.forecast import load_model_run, run_forecast

    lake = Lake(tmp_path / "lake")  # a copy: the session's sample lake must not gain this run's forecasts
    shutil.copytree(sample_descriptors.root, lake.root)

    metrics = json.loads((prior_run / "metrics.json").read_text())
    first_val = dt.date.fromisoformat(metrics["data"]["val"]["first_target"])
    model = EventForecaster.from_pretrained(prior_run)
    assert model.cfg.occurrence_prior and model.prior is not None
    assert model.prior.last_day < first_val  # the kept fit never saw a validation day

    # the forecast's probabilities are the head on top of the saved prior, not the head alone
    mr = load_model_run(prior_run)
    day = "2025-06-06"
    run_forecast(lake, day, ForecastConfig(num_futures=2), mr, embedder)
    assert lake.has_partition("forecasts", day, model=mr.run)
    from pipeline.features.dataset import collate, load_contexts

    items, _ = load_contexts(lake, list(SAMPLE_COUNTRIES), day, mr.config.dataset, embedder)
    batch = collate([items[c] for c in SAMPLE_COUNTRIES])
    with_prior = model.occurrence_probs(batch)["root"]
    z_prior = model.prior_logits(batch)
    assert z_prior.shape == batch["history"].shape[:2]
    model.prior = None
    with pytest.raises(ValueError, match="prior"):
        model.occurrence_probs(batch)
    model.occurrence.prior = False  # the same weights without the offset give other probabilities
    assert not np.allclose(model.occurrence_probs(batch)["root"], with_prior)


def test_model_directory_without_its_prior_is_a_one_line_error(prior_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(prior_run, copy)
    shutil.rmtree(copy / PRIOR_DIR)
    with pytest.raises(ModelFilesError, match="prior"):
        EventForecaster.from_pretrained(copy)


def test_prior_without_history_features_is_a_one_line_error(tmp_path):
    from pipeline.core.errors import UserError
    from pipeline.model.train import train
    from tests.test_train import SyntheticSequences, stack, tiny_cfg

    cfg = tiny_cfg(tmp_path)
    cfg.model.occurrence_prior = True
    with pytest.raises(UserError, match="country' table"):
        train(cfg, None, datasets=(SyntheticSequences(4), None), collate_fn=stack)
