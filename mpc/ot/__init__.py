"""Correlated randomness made by the two servers themselves, with oblivious transfer.

- base.py: 1-out-of-2 base OTs from X25519 (semi-honest);
- extension.py: SoftSpokenOT-style extension into correlated OTs (COTs) with a global Delta,
  and the fixed-key AES hash that turns COTs into independent pads;
- multiply.py: OT multiplication (Gilboa): shares of c * x for a choice bit c and vectors x;
- constructions.py: what every correlation kind of mpc.correlations is made from (its
  by_ot), from those;
- benes.py: the shuffle's permutation correlation by an oblivious switching network (an
  arbitrary-size Benes network);
- pool.py: COTs made ahead in the background, in fixed batches;
- source.py: OtSource, the CorrelationSource of OT mode.
See docs/mpc.md, "Correlations without a dealer", for the protocols, costs and security.
"""
