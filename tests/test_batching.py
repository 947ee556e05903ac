import torch

from speechrnn.batch import IGNORE_INDEX
from speechrnn.data.batching import LengthBucketSampler, PaddedBatches
from speechrnn.data.cache import SplitFeatures


def test_sampler_visits_every_index_once_in_similar_length_batches():
    lengths = torch.randint(5, 300, (1000,))
    sampler = LengthBucketSampler(lengths, batch_size=32, shuffle=True, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    assert padded / int(lengths.sum()) < 1.1  # bucketing keeps padding low


def test_sampler_reshuffles_per_epoch_and_repeats_per_seed():
    lengths = torch.randint(5, 50, (500,))
    sampler = LengthBucketSampler(lengths, batch_size=16, shuffle=True, seed=3)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert second != first


def test_sampler_shards_disjointly_with_equal_batch_counts():
    lengths = torch.randint(5, 100, (203,))
    shards = [list(LengthBucketSampler(lengths, 8, True, seed=0, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1])
    seen = [i for shard in shards for b in shard for i in b]
    assert sorted(seen) == list(range(203))


def test_padded_batches_gather_each_utterance_and_mask_padding():
    lengths = torch.tensor([3, 5, 2])
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    feats = torch.arange(10 * 2, dtype=torch.float32).reshape(10, 2)
    frame_targets = torch.arange(10)
    split = SplitFeatures(feats, offsets, frame_targets, lengths, ["a", "b", "c"])
    batch = PaddedBatches(split, framewise=True)[[2, 0, 1]]
    assert batch.feats.shape == (3, 5, 2)
    torch.testing.assert_close(batch.feats[1, :3], feats[0:3])
    torch.testing.assert_close(batch.feats[0, :2], feats[8:10])
    assert torch.all(batch.feats[0, 2:] == 0)
    assert batch.targets[0].tolist() == [8, 9, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]
