from core.api import exception_handler
from distribution.models import Operator


def test_a_row_deleted_under_a_service_is_a_404_not_a_500():
    response = exception_handler(Operator.DoesNotExist(), {})

    assert response.status_code == 404
    assert set(response.data) == {"detail"}
