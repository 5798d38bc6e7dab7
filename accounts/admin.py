from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import User


@admin.register(User)
class AegisUserAdmin(UserAdmin):
    list_display = (
        "username",
        "email",
        "role",
        "is_active",
        "imported_from",
        "last_login",
    )
    list_filter = ("role", "is_active", "is_staff")
    fieldsets = (
        *(UserAdmin.fieldsets or ()),
        ("Aegis Studio", {"fields": ("role", "imported_from")}),
    )
    add_fieldsets = (
        *UserAdmin.add_fieldsets,
        ("Aegis Studio", {"fields": ("role",)}),
    )
