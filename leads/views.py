from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from leads import services
from leads.models import Contact
from leads.serializers import ContactCreateSerializer, ContactSerializer


class ContactViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Contacts: the bots' intake, reading one back, and closing it."""

    queryset = Contact.objects.select_related("lead", "source", "operator")
    serializer_class = ContactSerializer

    def create(self, request: Request) -> Response:
        serializer = ContactCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        contact = services.register_contact(
            source=serializer.validated_data["source"],
            identity=serializer.validated_data["lead"],
            payload=serializer.validated_data["payload"],
        )
        return Response(ContactSerializer(contact).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str) -> Response:
        contact = services.close_contact(contact=self.get_object())
        return Response(ContactSerializer(contact).data)
