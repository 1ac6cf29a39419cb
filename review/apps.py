from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"
    verbose_name = "Review"

    def ready(self):
        from audit.services import event_recorded

        from .sampling import on_event_recorded

        event_recorded.connect(on_event_recorded, dispatch_uid="review.sampling")
