from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ai_model", "0009_set_max_output_tokens")]

    operations = [
        migrations.AlterModelOptions(
            name="aimodel",
            options={"ordering": ["provider", "name"], "verbose_name": "AI model"},
        ),
        migrations.AddConstraint(
            model_name="aimodel",
            constraint=models.CheckConstraint(
                condition=models.Q(context_window__gt=0), name="ai_model_context_window_gt_0"
            ),
        ),
    ]
