"""The tests the plugin parametrizes: every claim, and the conformance tests every probe gets.

Run them from any repository that installs interp-claims::

    pytest --pyargs interp_claims.suite --claims my_claims.toml
"""
