"""`make run` calls this before it starts the server: the one-off conversion of SmolLM2
from its GGUF file (about 20 s on two cores) then happens during set-up, where the
terminal says so, and not while the first person to ask waits for an answer."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Convert the lite engine's SmolLM2 weights into LITE_MODEL_CACHE if not done yet."

    def handle(self, *args, **options):
        # The worker side of inference/ (torch), imported here only: this command is the
        # engine's set-up step, not part of the web process.
        from inference.lite.phrasing import Phraser

        phraser = Phraser(settings.LITE_MODEL_CACHE)
        try:
            converted = phraser.prepare()
        except FileNotFoundError as exc:
            # Without the model package the lite engine words answers with its templates.
            self.stdout.write(f"SmolLM2 not prepared ({exc}); answers will use templates.")
            return
        except Exception as exc:
            raise CommandError(f"Could not prepare SmolLM2: {exc}") from exc
        if converted:
            self.stdout.write(f"SmolLM2 converted into {settings.LITE_MODEL_CACHE}.")
        else:
            self.stdout.write("SmolLM2 is ready.")
