"""Stand-in for Colab's ``google.colab`` (tests/test_colab_standin.py, tests/colab_today.py)."""
