"""The one line of an error a user is shown (tfcompress.messages)."""

from tfcompress.messages import clean_tf_line, first_line, tf_error_line


def test_first_line_skips_blank_lines_and_cuts_at_the_limit():
    assert first_line(ValueError("\n  bad value here  \nmore")) == "bad value here"
    assert first_line("abcdef", 3) == "abc"
    assert first_line(ValueError()) == ""


def test_tensorflow_lines_lose_their_decorations():
    assert clean_tf_line(
        "{{function_node __wrapped__DecodePng}} Invalid PNG data [Op:DecodePng] name: x"
    ) == "Invalid PNG data"
    text = ("Graph execution error:\n\nDetected at node x\n"
            "{{function_node f}} Input to reshape is a tensor with 3 values\n"
            "\t [[{{node Reshape}}]] [Op:__inference_f_12]")  # fmt: skip
    assert tf_error_line(ValueError(text)) == "Input to reshape is a tensor with 3 values"
    assert tf_error_line(ValueError("Corrupt record [Op:IteratorGetNext]")) == "Corrupt record"
