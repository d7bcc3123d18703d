"""Stage 4, the front ends: the command line, the web chat and its staff sign-in."""
