"""Message text: GSM 03.38 / UCS-2 detection, transliteration, encoding and splitting into parts."""
