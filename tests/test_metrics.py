import json

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


def test_blended_styles(images):
    one = style_distance(images["content"], images["style"])
    other = style_distance(images["content"], images["style2"])
    blended = evaluate(images["content"], None, [images["style"], images["style2"]], [1, 0])
    assert abs(blended["style"] - one) < 1e-6
    assert set(blended["style_layers"]) == {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"}
    assert abs(one - other) > 1e-3


def test_eval_command_json(images, capsys):
    code = cli.main(["eval", str(images["style"]), "--content", str(images["content"]), "--style", str(images["style"]), "--json"])
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
