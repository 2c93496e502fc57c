"""SMS segment counting: GSM-7 septets (extension characters cost two) vs UCS-2 units."""
import pytest

from chalicelib.domain.segments import count


@pytest.mark.parametrize("text,encoding,segments,units", [
    ("", "GSM-7", 0, 0),
    ("Hello World", "GSM-7", 1, 11),
    ("a" * 160, "GSM-7", 1, 160),
    ("a" * 161, "GSM-7", 2, 161),
    ("a" * 306, "GSM-7", 2, 306),
    ("a" * 307, "GSM-7", 3, 307),
    ("€" * 80, "GSM-7", 1, 160),       # extension chars: two septets each
    ("€" * 81, "GSM-7", 2, 162),
    ("é" * 160, "GSM-7", 1, 160),      # é is in the GSM-7 basic set
    ("ю" * 70, "UCS-2", 1, 70),
    ("ю" * 71, "UCS-2", 2, 71),
    ("ю" * 134, "UCS-2", 2, 134),
    ("ю" * 135, "UCS-2", 3, 135),
    ("😀" * 35, "UCS-2", 1, 70),       # astral characters are two UTF-16 units
    ("😀" * 36, "UCS-2", 2, 72),
])
def test_counts(text, encoding, segments, units):
    result = count(text)
    assert (result.encoding, result.segments, result.units) == (encoding, segments, units)


def test_extension_character_does_not_straddle_segments():
    # 152 plain septets then '€' (2 septets): the first part holds 152, '€' moves to the next.
    text = "a" * 152 + "€" + "a" * 10
    assert count(text).units == 164
    assert count(text).segments == 2
    # 153 + 153 exactly fills two parts; moving '€' to a boundary forces a third.
    assert count("a" * 306).segments == 2
    assert count("a" * 152 + "€" + "a" * 152).segments == 3


def test_surrogate_pair_does_not_straddle_segments():
    assert count("ю" * 66 + "😀" + "ю" * 66).segments == 3
    assert count("ю" * 65 + "😀" + "ю" * 67).segments == 2
