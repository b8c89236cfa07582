from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from distribution.models import Source
from distribution.sources import create_source_key


class Command(BaseCommand):
    @property
    def help(self) -> str:
        return _(
            "Create an API key for a source's bot and print it. Only the key is printed, so "
            "it can be piped; it is not stored and cannot be shown again."
        )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source_code", help=_("The source's code, e.g. telegram-bot."))
        parser.add_argument("--name", default="", help=_("What the key is for."))

    def handle(self, *args: object, source_code: str, name: str, **options: object) -> None:
        source = Source.objects.filter(code=source_code).first()
        if source is None:
            raise CommandError(_("No source has the code %(code)r.") % {"code": source_code})
        _key_row, key = create_source_key(source=source, name=name)
        self.stdout.write(key)
