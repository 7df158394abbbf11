from django.contrib import admin
from notes.models import Note


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ("ref", "owner")
    search_fields = ("ref", "text")
    list_select_related = ("owner",)
