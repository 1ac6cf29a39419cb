"""inference.boxes: grounding markup out of streamed text (pure Python)."""

from __future__ import annotations

from inference.boxes import BoxStreamParser, extract_boxes
from inference.types import Box


def feed_all(chunks, size=(2000, 1000)):
    parser = BoxStreamParser(size)
    text, boxes = "", []
    for chunk in chunks:
        t, b = parser.feed(chunk)
        text += t
        boxes += b
    t, b = parser.finish()
    return text + t, boxes + b


def test_one_box_scaled_to_the_original_screenshot():
    text, boxes = extract_boxes(
        "The button <|begin_of_box|>[100,200,300,400]<|end_of_box|> is blue.", (2000, 1000)
    )
    assert text == "The button  is blue."
    assert boxes == [Box(200, 200, 600, 400)]


def test_double_brackets_and_several_boxes():
    text, boxes = extract_boxes(
        "<|begin_of_box|>[[0,0,500,500],[500, 500, 1000, 1000]]<|end_of_box|>done", (1000, 800)
    )
    assert text == "done"
    assert boxes == [Box(0, 0, 500, 400), Box(500, 400, 1000, 800)]


def test_markers_split_across_every_chunk_boundary():
    source = "See <|begin_of_box|>[10,20,30,40]<|end_of_box|> here <|begin_of_box|>[[1,2,3,4]]<|end_of_box|>!"
    for size in (1, 2, 3, 5, 7):
        chunks = [source[i : i + size] for i in range(0, len(source), size)]
        text, boxes = feed_all(chunks)
        assert text == "See  here !", size
        assert boxes == [Box(20, 20, 60, 40), Box(2, 2, 6, 4)], size


def test_text_that_only_looks_like_a_marker_start_is_released():
    text, boxes = feed_all(["a <|begin", "_of_bo", "? no"])
    assert text == "a <|begin_of_bo? no"
    assert boxes == []


def test_held_back_prefix_is_flushed_at_the_end():
    parser = BoxStreamParser((100, 100))
    assert parser.feed("end <|begin_of") == ("end ", [])
    assert parser.finish() == ("<|begin_of", [])


def test_unterminated_box_still_yields_its_coordinates():
    text, boxes = feed_all(["x <|begin_of_box|>[0,0,1000,1000]"], size=(640, 480))
    assert text == "x "
    assert boxes == [Box(0, 0, 640, 480)]


def test_label_swapped_corners_and_clamping():
    _, boxes = extract_boxes(
        "<|begin_of_box|>Submit [900,800,100,1200]<|end_of_box|>", (1000, 1000)
    )
    assert boxes == [Box(100, 800, 900, 1000, label="Submit")]


def test_markup_without_coordinates_is_kept_as_text():
    text, boxes = extract_boxes("<|begin_of_box|>the logo<|end_of_box|>", (100, 100))
    assert (text, boxes) == ("the logo", [])


def test_without_image_size_the_grid_is_kept():
    _, boxes = extract_boxes("<|begin_of_box|>[1,2,3,4]<|end_of_box|>")
    assert boxes == [Box(1, 2, 3, 4)]
