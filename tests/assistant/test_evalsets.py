from assistant import evalsets


def test_squad_split_is_by_whole_article():
    assert evalsets.squad_split("Rhine") == "dev"
    assert evalsets.squad_split("Pharmacy") == "val"
    assert evalsets.squad_split("Normans") == "train"
    assert not evalsets.SQUAD_DEV_ARTICLES & evalsets.SQUAD_VAL_ARTICLES


def test_swequad_holdout_is_by_passage_and_about_a_fifth():
    ids = [f"swequad-training-p{i:04d}" for i in range(1000)]
    held = [p for p in ids if evalsets.swequad_train_split(p) == "holdout"]
    assert 150 < len(held) < 250
    assert all(evalsets.swequad_train_split(p) == "holdout" for p in held)  # stable per passage
