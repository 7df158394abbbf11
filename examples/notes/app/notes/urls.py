from django.urls import path

from notes import views

urlpatterns = [
    path("notes/", views.note_collection, name="note-list"),
    path("notes/<uuid:ref>/", views.note_detail, name="note-detail"),
    path("feed/", views.feed, name="feed"),
]
