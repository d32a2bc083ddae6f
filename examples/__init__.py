"""Example studies on the example plug-in package (``examples/evolora-example-plugin``), installed with evolora
as ``evolora.examples`` (package data) so that ``evolora run paraphrase-accuracy`` finds them anywhere; they
need the plug-in package installed (``pip install -e examples/evolora-example-plugin`` in a checkout)."""
