import json

import pytest
from PIL import Image

from impasto import cli
from impasto.metrics import content_distance, evaluate, style_distance


def test_identical_images_have_zero_distance(images):
    assert content_distance(images["content"], images["content"]) == 0
    assert style_distance(images["style"], images["style"]) < 1e-6


def test_content_resized_to_output_size_and_style_to_its_pixel_count(images):
    big = Image.open(images["content"]).resize((192, 128), Image.LANCZOS)
    # The content image is resized to the output's size: a resampled copy is almost the photo itself.
    assert content_distance(big, images["content"]) < 0.1
    # The painting is far from the photo's content, and the photo from the painting's style.
    assert content_distance(images["style"], images["content"]) > 1.0
    assert style_distance(images["content"], images["style"]) > 0.3


def test_style_is_compared_at_the_outputs_pixel_count(images):
    """A painting at 1.5 or 2 times the size is resized first, so its distance barely changes."""
    style = Image.open(images["style"])
    base = style_distance(images["content"], style)
    for factor in (2.0, 1.5):
        resized = style.resize((round(style.width * factor), round(style.height * factor)), Image.LANCZOS)
        assert abs(style_distance(images["content"], resized) / base - 1) < 0.1
    # Without that resize, brush strokes at another scale would look like another style.
    out = Image.open(images["content"])
    assert style_distance(out, style) != style_distance(out.resize((192, 128)), style)


def test_too_small_output_is_an_error_and_narrow_styles_are_enlarged(images, tmp_path):
    import pytest

    from impasto.errors import ImpastoError

    with pytest.raises(ImpastoError, match="too small"):
        evaluate(Image.new("RGB", (12, 40)), images["content"])
    narrow = Image.open(images["style"]).resize((300, 6))
    assert 0 < style_distance(images["content"], narrow) < 10
    with pytest.raises(ImpastoError, match="2 values for 1"):
        evaluate(images["content"], None, [images["style"]], [1, 2])


def test_blended_styles(images):
    one = style_distance(images["content"], images["style"])
    other = style_distance(images["content"], images["style2"])
    blended = evaluate(images["content"], None, [images["style"], images["style2"]], [1, 0])
    assert abs(blended["style"] - one) < 1e-6
    assert set(blended["style_layers"]) == {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"}
    assert abs(one - other) > 1e-3


def test_eval_command_json(images, capsys):
    code = cli.main(
        ["eval", str(images["style"]), "--content", str(images["content"]), "--style", str(images["style"]), "--json"]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["content"] > 1.0 and data["style"] < 1e-6


def test_eval_command_text_and_errors(images, capsys, tmp_path):
    assert cli.main(["eval", str(images["content"]), "--style", str(images["style"])]) == 0
    assert "style distance" in capsys.readouterr().out
    assert cli.main(["eval", str(images["content"])]) == 2
    assert "needs --content" in capsys.readouterr().err
    assert cli.main(["eval", str(tmp_path / "none.png"), "--content", str(images["content"])]) == 2
    assert cli.main(["eval", str(images["content"]), "--style", str(images["style"]), "--style-weights", "1", "2"]) == 2
    capsys.readouterr()
    both = [str(images["style"]), str(images["style2"])]
    assert cli.main(["eval", str(images["content"]), "--style", *both, "--style-weights", "1", "0", "--json"]) == 0
    blended = json.loads(capsys.readouterr().out)["style"]
    assert abs(blended - style_distance(images["content"], images["style"])) < 1e-6


def test_tone_ratios_show_a_washed_out_picture(images):
    """Contrast and saturation against the painting: 1 for the painting itself, lower for a greyed, flattened copy."""
    from PIL import ImageEnhance

    from impasto.metrics import tone

    painting = Image.open(images["style"]).convert("RGB")
    assert tone(painting, painting) == pytest.approx({"contrast": 1.0, "saturation": 1.0})
    washed = ImageEnhance.Color(ImageEnhance.Contrast(painting).enhance(0.6)).enhance(0.5)
    t = tone(washed, painting)
    assert 0.5 < t["contrast"] < 0.7 and 0.4 < t["saturation"] < 0.7
    # Several paintings: their blend-weighted reference (weight 0 = left out).
    assert tone(painting, [painting, washed], [1, 0]) == pytest.approx({"contrast": 1.0, "saturation": 1.0})
    assert set(evaluate(washed, None, painting)) >= {"contrast", "saturation"}
