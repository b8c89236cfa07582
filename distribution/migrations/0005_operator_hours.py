from django.db import migrations, models

from distribution.shifts import DayOff, ShiftInterval, hours_text


def note_hours(apps, schema_editor):
    """Operators that already have shifts or days off keep being checked against them."""
    operators = apps.get_model("distribution", "Operator")
    for operator in operators.objects.all():
        shifts = [ShiftInterval(s.weekday, s.start, s.end) for s in operator.shifts.all()]
        days_off = [DayOff(d.first_day, d.last_day) for d in operator.days_off.all()]
        if shifts or days_off:
            operator.hours = hours_text(shifts, days_off)
            operator.save(update_fields=["hours"])


class Migration(migrations.Migration):
    dependencies = [
        ("distribution", "0004_operators_at_work"),
    ]

    operations = [
        migrations.AddField(
            model_name="operator",
            name="hours",
            field=models.TextField(blank=True, default="", editable=False),
        ),
        migrations.RunPython(note_hours, migrations.RunPython.noop),
    ]
