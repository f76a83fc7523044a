"""The HTML repr's "?" link to each estimator's API page."""

import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_autodecoder import AutoDecoder, AutoDecoderImputer, AutoEncoder, ConvAutoDecoder, ConvAutoEncoder
from sklearn_autodecoder._doc_link import DOCS_URL


@pytest.mark.parametrize(
    "estimator",
    [AutoDecoder(), AutoEncoder(), ConvAutoDecoder("mnist"), ConvAutoEncoder("mnist"), AutoDecoderImputer()],
    ids=lambda e: type(e).__name__,
)
def test_html_repr_links_to_the_api_page(estimator):
    url = f"{DOCS_URL}generated/sklearn_autodecoder.{type(estimator).__name__}.html"
    assert estimator._get_doc_link() == url
    html = make_pipeline(StandardScaler(), estimator)._repr_html_()
    assert f'href="{url}"' in html
    assert "https://scikit-learn.org" in html  # the scikit-learn step keeps its own link


def test_a_user_subclass_gets_no_link():
    class MyAutoDecoder(AutoDecoder):
        pass

    assert MyAutoDecoder()._get_doc_link() == ""
