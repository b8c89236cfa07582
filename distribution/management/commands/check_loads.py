from django.core.management.base import BaseCommand

from distribution.loads import check_loads


class Command(BaseCommand):
    help = (
        "Compare each operator's stored load with its open and offered contacts, repair "
        "any difference and report it (the worker runs this hourly)."
    )

    def handle(self, *args: object, **options: object) -> None:
        drifts = check_loads()
        for drift in drifts:
            self.stdout.write(
                f"{drift.name} (#{drift.operator_id}): stored {drift.stored}, "
                f"contacts {drift.counted}; repaired."
            )
        if drifts:
            self.stdout.write(f"{len(drifts)} operator load(s) repaired.")
        else:
            self.stdout.write("Every operator's stored load matches its contacts.")
