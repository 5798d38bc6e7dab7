"""People who use Aegis Studio and the role each one has (DESIGN section 1)."""

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    LEAD = "lead", "Lead"
    ADMIN = "admin", "Admin"


class UserQuerySet(models.QuerySet["User"]):
    def annotators(self) -> "UserQuerySet":
        return self.filter(role=Role.ANNOTATOR)

    def leads(self) -> "UserQuerySet":
        return self.filter(role__in=[Role.LEAD, Role.ADMIN])


class AegisUserManager(UserManager.from_queryset(UserQuerySet)):  # type: ignore[misc]
    pass


class User(AbstractUser):
    """A person with one role; imported raters (from other tools) are inactive users."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    # Set for raters that came with an imported file (Aegis 1.0 slots, Label Studio
    # users); they hold votes but cannot log in.
    imported_from = models.CharField(max_length=64, blank=True, default="")
    # Wellbeing: nothing is served before the content warning is acknowledged.
    content_warning_acknowledged_at = models.DateTimeField(null=True, blank=True)
    blur_text = models.BooleanField(
        default=False, help_text="Blur dialogue text until it is revealed."
    )
    daily_label_cap = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Most labels a day (set by a lead); empty: none.",
    )

    objects = AegisUserManager()  # type: ignore[misc]

    class Meta:
        ordering = ["username"]

    @property
    def is_lead(self) -> bool:
        """Leads and admins may run the lead's screens (admins can do all a lead can)."""
        return self.role in (Role.LEAD, Role.ADMIN) or self.is_superuser

    @property
    def is_admin_role(self) -> bool:
        return self.role == Role.ADMIN or self.is_superuser

    @property
    def has_acknowledged_warning(self) -> bool:
        return self.content_warning_acknowledged_at is not None
