"""The "?" link of the estimators' HTML repr to their API page.

scikit-learn's HTML repr links each estimator to its documentation through
``_doc_link_module`` and ``_doc_link_template``; the API pages are generated
by Sphinx's autosummary as ``generated/sklearn_autodecoder.<Name>.html``.
"""

# Where the documentation site is published (change here if it moves).
DOCS_URL = "https://sklearn-autodecoder.readthedocs.io/en/stable/"
DOC_LINK_MODULE = "sklearn_autodecoder"
DOC_LINK_TEMPLATE = DOCS_URL + "generated/{estimator_module}.{estimator_name}.html"
